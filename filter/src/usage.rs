//! Token usage extraction and estimation (being built).
