//! Campaign logic shared by the campaigns function and the `vitrine campaigns` commands:
//! [`policy`], the learning policies; [`simulate`], a problem with a known optimum to measure
//! them on; [`ope`], off-policy evaluation of a policy on logged decisions; [`experiments`],
//! sticky variant assignment and the statistics of an experiment report.

pub mod experiments;
pub mod ope;
pub mod policy;
pub mod simulate;
