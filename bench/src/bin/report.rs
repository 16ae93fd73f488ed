//! `report [--bench-dir DIR] [--criterion-dir DIR]`: writes `report.md` and `latency.svg`
//! into `target/bench/` from the whole-path and scale results there and Criterion's saved
//! estimates (`$CARGO_TARGET_DIR/criterion`).

use std::path::PathBuf;

use anyhow::{bail, Context};
use modelgate_bench::report::{self, Inputs};
use modelgate_bench::whole_path;

fn main() -> anyhow::Result<()> {
    let target_dir = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || {
            let home = std::env::var_os("HOME").unwrap_or_default();
            PathBuf::from(home).join(".cache/modelgate/target")
        },
        PathBuf::from,
    );
    let mut inputs = Inputs {
        bench_dir: whole_path::bench_dir(),
        criterion_dir: target_dir.join("criterion"),
        envoy_bin: modelgate_e2e::artifacts::envoy_bin(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--bench-dir" => inputs.bench_dir = PathBuf::from(value()?),
            "--criterion-dir" => inputs.criterion_dir = PathBuf::from(value()?),
            other => bail!("unknown argument {other}"),
        }
    }
    std::fs::create_dir_all(&inputs.bench_dir)
        .with_context(|| format!("create {}", inputs.bench_dir.display()))?;
    let out = report::write(&inputs)?;
    eprintln!("report: wrote {}", out.display());
    Ok(())
}
