//! The proxy-wasm adapter, the only code that touches Envoy: it moves headers, bodies and
//! gRPC messages between Envoy and the pure logic, and maps the logic's verdicts to
//! proxy-wasm actions. One `.wasm`, two roles, told apart by the plugin configuration: the
//! HTTP filter on every worker (`root::Root::Filter`) and the singleton service on the main
//! thread (`root::Root::Service`).

mod host;
mod http;
mod root;

use proxy_wasm::types::LogLevel;

proxy_wasm::main! {{
    // Info until `on_configure` can ask Envoy for its wasm log level.
    proxy_wasm::set_log_level(LogLevel::Info);
    // Replaces the SDK's hook (which unwraps inside the hook) with one that logs where the
    // panic happened; the VM is gone either way and FAIL_RELOAD brings a fresh one.
    std::panic::set_hook(Box::new(|info| {
        log::error!("modelgate filter panicked, this VM stops: {info}");
    }));
    proxy_wasm::set_root_context(|_| Box::new(root::Root::default()));
}}
