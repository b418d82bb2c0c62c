//! The `vitrine` binary as a user runs it, in one test binary (each links the whole runtime).

mod campaigns;
mod catalog;
mod commands;
mod experiments;
mod fraud;
mod images;
mod lookbook;
mod pool;
