//! `scale [--smoke] [--out PATH]`: the scale runs (see `modelgate_bench::scale`) at 100k keys
//! (10k with `--smoke`), printed as they are measured and written as JSON to
//! `target/bench/scale.json` unless `--out` says otherwise. Missed targets are reported, not
//! failures; a step that cannot complete is.

use std::path::PathBuf;

use anyhow::{bail, Context};
use modelgate_bench::scale::{self, Settings};
use modelgate_bench::whole_path::bench_dir;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The harness's HTTP clients panic when built without one (see the function's docs).
    modelgate_control_plane::tls::install_crypto_provider();
    let mut settings = Settings::full();
    let mut out = bench_dir().join("scale.json");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--smoke" => settings = Settings::smoke(),
            "--out" => out = PathBuf::from(args.next().context("--out needs a path")?),
            other => {
                bail!("unknown argument {other} (see the doc comment of bench/src/bin/scale.rs)")
            }
        }
    }
    let results = scale::run(&settings).await?;
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    std::fs::write(&out, serde_json::to_vec_pretty(&results)?)
        .with_context(|| format!("write {}", out.display()))?;
    println!("scale: wrote {}", out.display());
    Ok(())
}
