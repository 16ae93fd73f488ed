//! The API endpoints the gateway serves, told apart by path: what each one's body and answer
//! carry decides what the filter reads, redacts and counts.

use crate::config::FilterConfig;

/// A supported endpoint, or an operator's pass-through path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/v1/chat/completions`
    ChatCompletions,
    /// `/v1/completions`
    Completions,
    /// `/v1/embeddings`
    Embeddings,
    /// `/v1/models`
    Models,
    /// `/v1/models/{id}`: one model, as the OpenAI SDK's `models.retrieve` asks.
    ModelInfo,
    /// Ollama `/api/chat`
    OllamaChat,
    /// Ollama `/api/generate`
    OllamaGenerate,
    /// Ollama `/api/embed`
    OllamaEmbed,
    /// Ollama `/api/tags`
    OllamaTags,
    /// One of the configured `pass_through_paths`: forwarded unread.
    PassThrough,
}

impl Endpoint {
    /// The endpoint of a request path (its query is ignored); `None` for paths the gateway
    /// does not serve.
    pub fn of(path: &str, config: &FilterConfig) -> Option<Self> {
        let path = crate::audit::path_only(path);
        let endpoint = match path {
            "/v1/chat/completions" => Self::ChatCompletions,
            "/v1/completions" => Self::Completions,
            "/v1/embeddings" => Self::Embeddings,
            "/v1/models" => Self::Models,
            "/api/chat" => Self::OllamaChat,
            "/api/generate" => Self::OllamaGenerate,
            "/api/embed" => Self::OllamaEmbed,
            "/api/tags" => Self::OllamaTags,
            _ if model_id(path).is_some() => Self::ModelInfo,
            _ if config.passes_through(path) => Self::PassThrough,
            _ => return None,
        };
        Some(endpoint)
    }

    /// Requests carry a prompt: the body is read, routed by model, redacted and counted.
    pub fn has_prompt(self) -> bool {
        !matches!(
            self,
            Self::Models | Self::ModelInfo | Self::OllamaTags | Self::PassThrough
        )
    }

    /// Answers carry generated text (restored and redacted on the way back).
    pub fn generates_text(self) -> bool {
        matches!(
            self,
            Self::ChatCompletions | Self::Completions | Self::OllamaChat | Self::OllamaGenerate
        )
    }

    /// OpenAI-compatible streams report usage only when asked with
    /// `stream_options.include_usage`; Ollama's always do.
    pub fn asks_for_stream_usage(self) -> bool {
        matches!(self, Self::ChatCompletions | Self::Completions)
    }
}

/// The model id of a `/v1/models/{id}` path (query ignored); ids may hold `/` and `:`
/// (`org/model`, `llama3.1:8b`), as the OpenAI SDK puts them in the path unescaped.
pub fn model_id(path: &str) -> Option<&str> {
    crate::audit::path_only(path)
        .strip_prefix("/v1/models/")
        .filter(|id| !id.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PluginConfig;

    fn config(json: &str) -> FilterConfig {
        match PluginConfig::parse(json.as_bytes()).unwrap() {
            PluginConfig::Filter(config) => config,
            PluginConfig::Service(_) => panic!("not a filter config"),
        }
    }

    #[test]
    fn the_supported_paths_and_nothing_else() {
        let config = config(r#"{"default_cluster": "u", "pass_through_paths": ["/health"]}"#);
        let cases = [
            ("/v1/chat/completions", Some(Endpoint::ChatCompletions)),
            ("/v1/chat/completions?x=1", Some(Endpoint::ChatCompletions)),
            ("/v1/completions", Some(Endpoint::Completions)),
            ("/v1/embeddings", Some(Endpoint::Embeddings)),
            ("/v1/models", Some(Endpoint::Models)),
            ("/api/chat", Some(Endpoint::OllamaChat)),
            ("/api/generate", Some(Endpoint::OllamaGenerate)),
            ("/api/embed", Some(Endpoint::OllamaEmbed)),
            ("/api/tags", Some(Endpoint::OllamaTags)),
            ("/health", Some(Endpoint::PassThrough)),
            ("/v1/chat/completions/", None),
            ("/v1/models/llama", Some(Endpoint::ModelInfo)),
            ("/v1/models/org/model:8b?x=1", Some(Endpoint::ModelInfo)),
            ("/v1/models/", None),
            ("/api/show", None),
            ("/admin", None),
            ("/", None),
        ];
        for (path, expected) in cases {
            assert_eq!(Endpoint::of(path, &config), expected, "{path}");
        }
    }

    #[test]
    fn what_each_endpoint_carries() {
        assert!(Endpoint::Embeddings.has_prompt());
        assert!(!Endpoint::Embeddings.generates_text());
        assert!(Endpoint::OllamaChat.generates_text());
        assert!(!Endpoint::OllamaChat.asks_for_stream_usage());
        assert!(Endpoint::Completions.asks_for_stream_usage());
        assert!(!Endpoint::PassThrough.has_prompt());
        assert!(!Endpoint::ModelInfo.has_prompt());
        assert_eq!(
            model_id("/v1/models/org/model:8b?x=1"),
            Some("org/model:8b")
        );
    }
}
