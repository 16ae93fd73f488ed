//! `make bench` beyond the Criterion micro benchmarks: the whole request path under load
//! through real Envoy (router only, and with the filter in several configurations), the
//! scale runs (100k keys), and the report that puts them side by side in `target/bench/`.

pub mod jwt;
pub mod litellm;
pub mod load;
pub mod procfs;
pub mod report;
pub mod results;
pub mod scale;
pub mod upstream;
pub mod whole_path;
