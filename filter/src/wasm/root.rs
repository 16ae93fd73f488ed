//! The root context: parses the configuration once and becomes the HTTP filter's root (one
//! per worker VM: shares the config and the decoded snapshot with its HTTP contexts) or the
//! singleton service (ticks, gRPC to the control plane).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType};

use super::host::EnvoyHost;
use super::http::{HttpFilter, Misconfigured};
use crate::audit::USAGE_QUEUE;
use crate::config::PluginConfig;
use crate::exchange::RedactorCache;
use crate::flow::RECORDS_DROPPED_COUNTER;
use crate::identity::IdentityCache;
use crate::service::{GrpcReply, Service};
use crate::snapshot::SnapshotCache;

#[derive(Debug, Default)]
pub(super) enum Root {
    #[default]
    Unconfigured,
    Filter(Rc<FilterShared>),
    Service(Box<ServiceRoot>),
}

/// What every HTTP context of one worker VM shares.
#[derive(Debug)]
pub(super) struct FilterShared {
    pub(super) config: Rc<crate::config::FilterConfig>,
    pub(super) snapshots: RefCell<SnapshotCache>,
    pub(super) redactors: Rc<RedactorCache>,
    pub(super) identities: Rc<IdentityCache>,
    pub(super) host: EnvoyHost,
    /// The hint about `allow_on_headers_stop_iteration` is logged once per VM.
    pub(super) warned_body_never_came: Cell<bool>,
}

#[derive(Debug)]
pub(super) struct ServiceRoot {
    service: Service,
    host: EnvoyHost,
    /// Set once this root has logged that it is installed as an HTTP filter by mistake.
    warned_not_a_filter: Cell<bool>,
}

impl Context for Root {
    fn on_grpc_call_response(&mut self, token_id: u32, status_code: u32, response_size: usize) {
        let Root::Service(root) = self else {
            return;
        };
        let body;
        let message;
        let reply = if status_code == 0 {
            body = hostcalls::get_buffer(BufferType::GrpcReceiveBuffer, 0, response_size)
                .ok()
                .flatten()
                .unwrap_or_default();
            GrpcReply::Ok(&body)
        } else {
            message = hostcalls::get_grpc_status()
                .ok()
                .and_then(|(_, message)| message)
                .unwrap_or_default();
            GrpcReply::Failed {
                status: status_code,
                message: &message,
            }
        };
        root.service.on_grpc_reply(&root.host, token_id, reply);
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        if let Ok(level) = hostcalls::get_log_level() {
            proxy_wasm::set_log_level(level);
        }
        let bytes = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
            .ok()
            .flatten()
            .unwrap_or_default();
        let config = match PluginConfig::parse(&bytes) {
            Ok(config) => config,
            Err(err) => {
                log::error!("invalid plugin configuration, refusing to start: {err}");
                return false;
            }
        };
        let host = EnvoyHost::default();
        if let Err(err) = host.queue_id(USAGE_QUEUE) {
            log::error!("usage queue unavailable, refusing to start: {err}");
            return false;
        }
        if let Err(err) = host.declare_counter(RECORDS_DROPPED_COUNTER) {
            log::warn!("counter {RECORDS_DROPPED_COUNTER} unavailable: {err}");
        }
        *self = match config {
            PluginConfig::Filter(config) => {
                log::info!(
                    "HTTP filter configured (default cluster {:?}, max staleness {} s)",
                    config.default_cluster,
                    config.max_staleness_s
                );
                Root::Filter(Rc::new(FilterShared {
                    config: Rc::new(config),
                    snapshots: RefCell::new(SnapshotCache::new()),
                    redactors: Rc::new(RedactorCache::new()),
                    identities: Rc::new(IdentityCache::new()),
                    host,
                    warned_body_never_came: Cell::new(false),
                }))
            }
            PluginConfig::Service(config) => {
                if let Err(status) =
                    hostcalls::set_tick_period(Duration::from_millis(u64::from(config.tick_ms)))
                {
                    log::error!("service: no tick ({status:?}), refusing to start");
                    return false;
                }
                log::info!(
                    "service configured (control plane cluster {:?}, tick {} ms, node {:?})",
                    config.control_plane_cluster,
                    config.tick_ms,
                    config.node_id
                );
                let service = Service::new(config, &host);
                Root::Service(Box::new(ServiceRoot {
                    service,
                    host,
                    warned_not_a_filter: Cell::new(false),
                }))
            }
        };
        true
    }

    fn on_tick(&mut self) {
        if let Root::Service(root) = self {
            root.service.on_tick(&root.host);
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        // The SDK panics on `None`, so a root that cannot filter still answers: fail closed.
        Some(match self {
            Root::Filter(shared) => Box::new(HttpFilter::new(Rc::clone(shared))),
            Root::Service(root) => {
                if !root.warned_not_a_filter.replace(true) {
                    log::error!(
                        "the service configuration is installed as an HTTP filter; refusing its requests"
                    );
                }
                Box::new(Misconfigured)
            }
            Root::Unconfigured => Box::new(Misconfigured),
        })
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
