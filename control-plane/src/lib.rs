//! Modelgate control plane (being built).
