//! The whole local stack of one test: upstream stand-in, control plane (routing [`MODEL`] to
//! the stand-in), and Envoy between them, each on its own ports.

use crate::api::{Gateway, MODEL};
use crate::control_plane::{ControlPlane, ControlPlaneAccess};
use crate::envoy::{Envoy, EnvoyConfig};
use crate::upstream::Upstream;

pub struct Stack {
    pub upstream: Upstream,
    pub control_plane: ControlPlane,
    /// The control plane's address and the data-plane token (named [`Stack::DATA_PLANE`])
    /// the Envoy presents.
    pub access: ControlPlaneAccess,
    pub envoy: Envoy,
}

impl Stack {
    /// The name of the stack's data-plane token.
    pub const DATA_PLANE: &'static str = "stack";

    pub async fn start(config: EnvoyConfig) -> Stack {
        let upstream = Upstream::start();
        let control_plane = ControlPlane::start().await;
        control_plane.create_model(MODEL).await;
        let access = control_plane.data_plane_access(Self::DATA_PLANE);
        let envoy = Envoy::start(upstream.addr(), &access, config).await;
        Stack {
            upstream,
            control_plane,
            access,
            envoy,
        }
    }

    pub fn gateway(&self) -> &Gateway {
        self.envoy.gateway()
    }
}
