//! Every Envoy config in `envoy/` passes `envoy --mode validate` with the real filter.
//!
//! Validation loads the .wasm and runs the HTTP filter's `on_configure`, so it also proves the
//! filter accepts each config's JSON `configuration`. (Envoy's validate mode skips bootstrap
//! extensions, so the singleton service's configuration is exercised by the scenarios.)
//! Examples reference their files under `/etc/modelgate/`; the test points that prefix at a
//! directory holding the built filter and a throwaway certificate.
// Helpers outside #[test] fns fail the test the same way the tests do (see the harness docs).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use modelgate_e2e::artifacts;
use modelgate_e2e::envoy::render_template;
use tempfile::TempDir;

/// How each file under `envoy/` is checked. A new file must be added here.
const FILES: &[(&str, Check)] = &[
    ("local.yaml.tmpl", Check::Template),
    ("sidecar.yaml", Check::Example),
    ("mtls-upstream.yaml", Check::Example),
    ("istio/bootstrap-configmap.yaml", Check::IstioBootstrap),
    ("istio/envoyfilter.yaml", Check::IstioEnvoyFilter),
    ("istio/wasmplugin.yaml", Check::IstioWasmPlugin),
    ("istio/README.md", Check::Documentation),
];

#[derive(Clone, Copy, Debug)]
enum Check {
    /// Rendered with sample values by `scripts/render-envoy-config`, then validated.
    Template,
    /// `/etc/modelgate/` rewritten to the test's files, then validated.
    Example,
    /// The bootstrap fragment in the ConfigMap validates as a bootstrap of its own.
    IstioBootstrap,
    /// The filter's JSON configuration has the keys of the local template's.
    IstioEnvoyFilter,
    /// `pluginConfig` has the keys of the local template's filter configuration.
    IstioWasmPlugin,
    Documentation,
}

#[test]
fn every_file_in_envoy_dir_is_checked() {
    let root = artifacts::repo_root().join("envoy");
    let mut found = Vec::new();
    list_files(&root, &root, &mut found);
    found.sort();
    let mut listed: Vec<String> = FILES.iter().map(|(name, _)| name.to_string()).collect();
    listed.sort();
    assert_eq!(
        found, listed,
        "files in envoy/ vs the FILES table of this test"
    );
}

#[test]
fn local_template_validates() {
    let etc = EtcModelgate::new();
    for (name, check) in FILES {
        if let Check::Template = check {
            let rendered = etc.dir.path().join("rendered.yaml");
            let template = artifacts::repo_root().join("envoy").join(name);
            render_template(&template, &sample_values(&template), &rendered);
            assert_filter_may_wait_for_the_body(name, &read(&rendered));
            assert_local_replies_are_json(name, &read(&rendered));
            validate(&rendered);
        }
    }
}

#[test]
fn example_configs_validate() {
    let etc = EtcModelgate::new();
    for (name, check) in FILES {
        if let Check::Example = check {
            let text = read(&artifacts::repo_root().join("envoy").join(name));
            assert_filter_may_wait_for_the_body(name, &text);
            assert_local_replies_are_json(name, &text);
            validate(&etc.write_rewritten(name, &text));
        }
    }
}

#[test]
fn istio_bootstrap_fragment_validates() {
    let etc = EtcModelgate::new();
    let configmap = read(&artifacts::repo_root().join("envoy/istio/bootstrap-configmap.yaml"));
    let fragment = block_scalar(&configmap, "custom_bootstrap.json");
    let parsed: serde_json::Value =
        serde_json::from_str(&fragment).expect("custom_bootstrap.json is JSON");
    let vm_config = &parsed["bootstrap_extensions"][0]["typed_config"]["config"]["vm_config"];
    assert!(
        vm_config.get("vm_id").is_none(),
        "istiod gives WasmPlugin VMs no vm_id; the service must match to share data"
    );
    validate(&etc.write_rewritten("bootstrap.json", &fragment));
}

#[test]
fn istio_filter_configurations_have_the_local_filter_keys() {
    let dir = tempfile::tempdir().expect("temp dir");
    let template = artifacts::repo_root().join("envoy/local.yaml.tmpl");
    let rendered = dir.path().join("local.yaml");
    render_template(&template, &sample_values(&template), &rendered);
    let expected = json_config_keys(&read(&rendered), "filter");

    let envoy_filter = read(&artifacts::repo_root().join("envoy/istio/envoyfilter.yaml"));
    assert_filter_may_wait_for_the_body("istio/envoyfilter.yaml", &envoy_filter);
    assert_eq!(
        json_config_keys(&envoy_filter, "filter"),
        expected,
        "istio/envoyfilter.yaml"
    );

    let plugin = read(&artifacts::repo_root().join("envoy/istio/wasmplugin.yaml"));
    let mut plugin_keys: Vec<String> = block_after(&plugin, "pluginConfig:")
        .iter()
        .filter_map(|line| line.trim().split_once(':').map(|(key, _)| key.to_string()))
        .collect();
    plugin_keys.sort_unstable();
    assert_eq!(plugin_keys, expected, "istio/wasmplugin.yaml pluginConfig");
}

/// Sorted keys of the JSON plugin configuration with this `role` in a config's
/// `value: '{...}'` lines.
fn json_config_keys(config: &str, role: &str) -> Vec<String> {
    let json: serde_json::Value = config
        .lines()
        .filter_map(|line| line.trim().strip_prefix("value: '")?.strip_suffix('\''))
        .filter_map(|json| serde_json::from_str(json).ok())
        .find(|json: &serde_json::Value| json["role"] == role)
        .unwrap_or_else(|| panic!("no {role} configuration"));
    let mut keys: Vec<String> = json
        .as_object()
        .expect("JSON object")
        .keys()
        .cloned()
        .collect();
    keys.sort_unstable();
    keys
}

/// Values for every placeholder a template may have; a new placeholder needs one here.
fn sample_values(template: &Path) -> Vec<(&'static str, String)> {
    let text = read(template);
    let samples = [
        ("LISTEN_PORT", "8080".to_string()),
        ("ADMIN_PORT", "9901".to_string()),
        ("WASM_PATH", artifacts::wasm().display().to_string()),
        ("UPSTREAM_HOST", "127.0.0.1".to_string()),
        ("UPSTREAM_PORT", "11434".to_string()),
        (
            "UPSTREAM_AUTHORIZATION",
            "Bearer upstream-token".to_string(),
        ),
        ("CONTROL_PLANE_HOST", "127.0.0.1".to_string()),
        ("CONTROL_PLANE_PORT", "50051".to_string()),
        ("CONTROL_PLANE_HTTP_PORT", "8081".to_string()),
        (
            "CONTROL_PLANE_TOKEN",
            format!("mgdp-abcdefghijkl-{}", "A".repeat(43)),
        ),
        ("TICK_MS", "1000".to_string()),
        ("MAX_STALENESS_S", "30".to_string()),
    ];
    let wanted: Vec<&str> = text
        .split("${")
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
        .collect();
    for name in &wanted {
        assert!(
            samples.iter().any(|(known, _)| known == name),
            "no sample value for placeholder {name} of {}",
            template.display()
        );
    }
    samples
        .into_iter()
        .filter(|(name, _)| wanted.contains(name))
        .collect()
}

/// Stand-in for `/etc/modelgate/`: the built filter and a self-signed certificate serving
/// as CA and client certificate.
struct EtcModelgate {
    dir: TempDir,
}

impl EtcModelgate {
    fn new() -> EtcModelgate {
        let dir = tempfile::tempdir().expect("temp dir");
        let etc = dir.path().join("etc-modelgate");
        std::fs::create_dir_all(etc.join("tls")).expect("mkdir");
        std::os::unix::fs::symlink(artifacts::wasm(), etc.join("modelgate_filter.wasm"))
            .expect("symlink wasm");
        let status = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
            ])
            .args(["-nodes", "-days", "1", "-subj", "/CN=modelgate-test"])
            .arg("-keyout")
            .arg(etc.join("tls/client-key.pem"))
            .arg("-out")
            .arg(etc.join("tls/client.pem"))
            .output()
            .expect("run openssl (make test installs it)");
        assert!(
            status.status.success(),
            "openssl: {}",
            String::from_utf8_lossy(&status.stderr)
        );
        std::fs::copy(etc.join("tls/client.pem"), etc.join("tls/ca.pem")).expect("copy ca");
        EtcModelgate { dir }
    }

    /// Writes `text` with `/etc/modelgate/` pointing here; returns the file's path.
    fn write_rewritten(&self, name: &str, text: &str) -> PathBuf {
        let etc = self.dir.path().join("etc-modelgate");
        let rewritten = text.replace("/etc/modelgate/", &format!("{}/", etc.display()));
        let path = self.dir.path().join(name.replace('/', "_"));
        std::fs::write(&path, rewritten).expect("write config");
        path
    }
}

/// The filter reads the body before routing, which Envoy allows only with this flag; a config
/// without it hangs every request that has a body.
fn assert_filter_may_wait_for_the_body(name: &str, text: &str) {
    let filters = text.matches("filters.http.wasm.v3.Wasm").count();
    let flags = text
        .matches("allow_on_headers_stop_iteration: true")
        .count();
    assert_eq!(
        filters, flags,
        "{name}: wasm HTTP filters without allow_on_headers_stop_iteration"
    );
}

/// Every connection manager that runs the filter maps Envoy's own replies to the JSON error
/// shape, and none wraps every reply (which would re-wrap the filter's own JSON answers).
fn assert_local_replies_are_json(name: &str, text: &str) {
    let filters = text.matches("filters.http.wasm.v3.Wasm").count();
    let mapped = text.matches("local_reply_config:").count();
    assert_eq!(
        filters, mapped,
        "{name}: wasm HTTP filters without local_reply_config"
    );
    assert!(
        !text.contains("\n            body_format:"),
        "{name}: a top-level body_format would re-wrap the filter's replies"
    );
}

fn validate(config: &Path) {
    let output = Command::new(artifacts::envoy_bin())
        .args(["--mode", "validate", "-c"])
        .arg(config)
        .output()
        .expect("run envoy --mode validate");
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "envoy --mode validate -c {} failed:\n{log}\n--- config ---\n{}",
        config.display(),
        read(config)
    );
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn list_files(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            list_files(root, &path, out);
        } else {
            let relative = path.strip_prefix(root).expect("under root");
            out.push(relative.display().to_string());
        }
    }
}

/// The lines indented below the line that ends with `header`.
fn block_after<'a>(text: &'a str, header: &str) -> Vec<&'a str> {
    let mut lines = text
        .lines()
        .skip_while(|line| !line.trim_end().ends_with(header));
    let header_line = lines.next().unwrap_or_else(|| panic!("no {header}"));
    let indent = |line: &str| line.len() - line.trim_start().len();
    let header_indent = indent(header_line);
    lines
        .take_while(|line| line.trim().is_empty() || indent(line) > header_indent)
        .filter(|line| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
        .collect()
}

/// The content of a YAML `key: |` block scalar.
fn block_scalar(text: &str, key: &str) -> String {
    let lines = block_after(text, &format!("{key}: |"));
    let indent = lines
        .iter()
        .map(|line| line.len() - line.trim_start().len())
        .min()
        .unwrap_or(0);
    lines
        .iter()
        .map(|line| &line[indent..])
        .collect::<Vec<_>>()
        .join("\n")
}
