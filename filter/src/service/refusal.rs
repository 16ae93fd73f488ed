//! Whether the control plane refuses this Envoy's data-plane token: logged once when refusals
//! start (with what to do about it) and once when they end, instead of on every tick.

use super::GrpcReply;

/// gRPC status UNAUTHENTICATED.
const UNAUTHENTICATED: u32 = 16;

/// A change in whether the token is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TokenChange<'a> {
    /// With the control plane's message (it never repeats the token).
    Refused(&'a str),
    Accepted,
}

#[derive(Debug, Default)]
pub(super) struct TokenRefusal {
    refused: bool,
}

impl TokenRefusal {
    /// Feeds the answer to one call; `on_change` runs when it changes the state. Only
    /// UNAUTHENTICATED starts a refusal and only an answered call ends it: an unreachable
    /// control plane says nothing about the token.
    pub(super) fn observe(
        &mut self,
        reply: GrpcReply<'_>,
        on_change: impl FnOnce(TokenChange<'_>),
    ) {
        match reply {
            GrpcReply::Failed {
                status: UNAUTHENTICATED,
                message,
            } if !self.refused => {
                self.refused = true;
                on_change(TokenChange::Refused(message));
            }
            GrpcReply::Ok(_) if self.refused => {
                self.refused = false;
                on_change(TokenChange::Accepted);
            }
            _ => {}
        }
    }
}

/// What the service logs on a change.
pub(super) fn log_change(change: TokenChange<'_>) {
    match change {
        TokenChange::Refused(message) => log::error!(
            "the data-plane token was refused: create one with `modelgate dataplane token \
             create --name NAME` and set it as control_plane_token in the service plugin's \
             configuration (control plane says: {message})"
        ),
        TokenChange::Accepted => log::info!("the control plane accepts the data-plane token again"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_is_reported_once_per_change() {
        let refused = GrpcReply::Failed {
            status: UNAUTHENTICATED,
            message: "data-plane token abc is revoked",
        };
        let unavailable = GrpcReply::Failed {
            status: 14,
            message: "no healthy upstream",
        };
        let mut state = TokenRefusal::default();
        let mut changes = Vec::new();
        for reply in [
            GrpcReply::Ok(b""),
            refused,
            refused,
            unavailable,
            refused,
            GrpcReply::Ok(b""),
            GrpcReply::Ok(b""),
            unavailable,
            refused,
        ] {
            state.observe(reply, |change| changes.push(format!("{change:?}")));
        }
        assert_eq!(
            changes,
            [
                r#"Refused("data-plane token abc is revoked")"#,
                "Accepted",
                r#"Refused("data-plane token abc is revoked")"#,
            ]
        );
    }
}
