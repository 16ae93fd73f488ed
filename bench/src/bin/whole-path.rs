//! `whole-path [--smoke] [--out PATH] [--duration S] [--warmup S] [--concurrency N]
//! [--no-litellm] [--configs a,b,..]`: the whole-path load benchmark (see `modelgate_bench::whole_path`), written
//! as JSON to `target/bench/whole-path.json` unless `--out` says otherwise. Fails when any
//! configuration had errors or answered nothing: the path is then broken, not slow.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use modelgate_bench::whole_path::{self, Settings};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    // The harness's HTTP clients panic when built without one (see the function's docs).
    modelgate_control_plane::tls::install_crypto_provider();
    let mut settings = Settings::full();
    let mut out = whole_path::bench_dir().join("whole-path.json");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--smoke" => settings = Settings::smoke(),
            "--out" => out = PathBuf::from(value()?),
            "--duration" => settings.duration = seconds(&value()?)?,
            "--warmup" => settings.warmup = seconds(&value()?)?,
            "--concurrency" => settings.envoy_concurrency = value()?.parse()?,
            "--no-litellm" => settings.litellm = false,
            "--configs" => settings.only = value()?.split(',').map(str::to_string).collect(),
            other => bail!(
                "unknown argument {other} (see the doc comment of bench/src/bin/whole-path.rs)"
            ),
        }
    }
    let results = whole_path::run(&settings).await?;
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    std::fs::write(&out, serde_json::to_vec_pretty(&results)?)
        .with_context(|| format!("write {}", out.display()))?;
    eprintln!("whole path: wrote {}", out.display());
    for note in &results.notes {
        eprintln!("note: {note}");
    }
    let broken: Vec<String> = results
        .points
        .iter()
        .filter(|p| p.errors > 0 || p.ok == 0)
        .map(|p| {
            format!(
                "({}) {}: {} ok, {:?}",
                p.config,
                p.label(),
                p.ok,
                p.error_kinds
            )
        })
        .collect();
    if !broken.is_empty() {
        bail!("errors or no answers:\n{}", broken.join("\n"));
    }
    Ok(())
}

fn seconds(text: &str) -> anyhow::Result<Duration> {
    Ok(Duration::from_secs_f64(text.parse().with_context(
        || format!("{text:?} is not a number of seconds"),
    )?))
}
