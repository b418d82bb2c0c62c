//! The non-graph baseline: logistic regression over standardised transaction features, trained
//! with candle (full-batch AdamW, positives weighted up to balance the classes). Deterministic:
//! the loss is convex and the weights start at zero.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};

/// A trained logistic regression with its feature scaling.
#[derive(Debug, Clone, PartialEq)]
pub struct LogisticRegression {
    mean: Vec<f32>,
    std: Vec<f32>,
    weights: Vec<f32>,
    bias: f32,
}

/// Training steps.
const STEPS: usize = 300;

impl LogisticRegression {
    /// Fits `x` (row-major, `features` columns) to `labels`.
    pub fn train(x: &[f32], labels: &[bool], features: usize) -> candle_core::Result<Self> {
        let rows = labels.len();
        let (mean, std) = scaling(x, features);
        let scaled = standardise(x, &mean, &std);
        let device = Device::Cpu;
        let xs = Tensor::from_vec(scaled, (rows, features), &device)?;
        let ys = Tensor::from_vec(
            labels.iter().map(|l| *l as u8 as f32).collect::<Vec<_>>(),
            (rows, 1),
            &device,
        )?;
        let positives = labels.iter().filter(|l| **l).count().max(1) as f32;
        let weight = ((rows as f32 - positives) / positives).clamp(1.0, 100.0);
        let sample_weights = ((&ys * (weight as f64 - 1.0))? + 1.0)?;
        let w = Var::zeros((features, 1), DType::F32, &device)?;
        let b = Var::zeros((1, 1), DType::F32, &device)?;
        let mut optimizer = AdamW::new(
            vec![w.clone(), b.clone()],
            ParamsAdamW {
                lr: 0.05,
                weight_decay: 1e-4,
                ..Default::default()
            },
        )?;
        for _ in 0..STEPS {
            let z = xs.matmul(w.as_tensor())?.broadcast_add(b.as_tensor())?;
            // Weighted binary cross-entropy with logits: softplus(z) - y·z, softplus stable.
            let softplus = (z.relu()? + ((z.abs()?.neg()?.exp()? + 1.0)?.log()?))?;
            let loss = ((softplus - (&ys * &z)?)? * &sample_weights)?.mean_all()?;
            optimizer.backward_step(&loss)?;
        }
        Ok(Self {
            mean,
            std,
            weights: w.as_tensor().flatten_all()?.to_vec1()?,
            bias: b.as_tensor().flatten_all()?.to_vec1::<f32>()?[0],
        })
    }

    /// Fraud probabilities for `x` (row-major, same columns as in training).
    pub fn score(&self, x: &[f32]) -> Vec<f32> {
        let features = self.weights.len();
        x.chunks(features)
            .map(|row| {
                let z: f32 = self.bias
                    + row
                        .iter()
                        .enumerate()
                        .map(|(i, v)| (v - self.mean[i]) / self.std[i] * self.weights[i])
                        .sum::<f32>();
                1.0 / (1.0 + (-z).exp())
            })
            .collect()
    }
}

/// Column means and standard deviations of `x` (row-major, `features` columns).
pub(crate) fn scaling(x: &[f32], features: usize) -> (Vec<f32>, Vec<f32>) {
    let rows = (x.len() / features).max(1) as f64;
    let mut mean = vec![0.0f64; features];
    let mut sq = vec![0.0f64; features];
    for row in x.chunks(features) {
        for (i, v) in row.iter().enumerate() {
            mean[i] += *v as f64;
            sq[i] += (*v as f64) * (*v as f64);
        }
    }
    let mean: Vec<f64> = mean.iter().map(|m| m / rows).collect();
    let std = sq
        .iter()
        .zip(&mean)
        .map(|(s, m)| ((s / rows - m * m).max(0.0).sqrt() + 1e-6) as f32)
        .collect();
    (mean.into_iter().map(|m| m as f32).collect(), std)
}

fn standardise(x: &[f32], mean: &[f32], std: &[f32]) -> Vec<f32> {
    let features = mean.len();
    x.iter()
        .enumerate()
        .map(|(i, v)| (v - mean[i % features]) / std[i % features])
        .collect()
}
