//! Shared by the integration tests: a throwaway PostgreSQL and the real `modelgate` process.

// Each test crate uses a different part of this module.
#![allow(dead_code)]

pub mod control_plane;
pub mod http;
pub mod postgres;
pub mod rest;
