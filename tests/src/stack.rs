//! The whole local stack of one test: upstream stand-in, control plane (routing [`MODEL`] to
//! the stand-in), and Envoy between them, each on its own ports.

use crate::api::{Gateway, MODEL};
use crate::control_plane::ControlPlane;
use crate::envoy::{Envoy, EnvoyConfig};
use crate::upstream::Upstream;

pub struct Stack {
    pub upstream: Upstream,
    pub control_plane: ControlPlane,
    pub envoy: Envoy,
}

impl Stack {
    pub async fn start(config: EnvoyConfig) -> Stack {
        let upstream = Upstream::start();
        let control_plane = ControlPlane::start().await;
        control_plane.create_model(MODEL).await;
        let envoy = Envoy::start(upstream.addr(), control_plane.grpc_addr(), config).await;
        Stack {
            upstream,
            control_plane,
            envoy,
        }
    }

    pub fn gateway(&self) -> &Gateway {
        self.envoy.gateway()
    }
}
