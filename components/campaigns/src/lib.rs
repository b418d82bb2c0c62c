//! Campaign logic shared by the campaigns function and the `vitrine campaigns` commands.
//! So far: [`ope`], off-policy evaluation of a policy on logged decisions.

pub mod ope;
