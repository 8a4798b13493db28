//! The HTTP side shared by both adapters: one reqwest client with timeouts, retries with backoff
//! (429 honouring `retry-after` up to a cap, 5xx, transport errors), error classification, and
//! scrubbing of the API key from everything we report.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

use super::{ApiKey, HttpOptions, LlmError};

/// The longest provider message we quote in an error.
const MAX_MESSAGE: usize = 500;

/// A JSON-over-HTTPS client of one provider endpoint.
#[derive(Clone)]
pub(crate) struct HttpClient {
    http: reqwest::Client,
    /// The base URL without a trailing slash.
    base: String,
    /// The base URL as shown in errors: no user info, no query.
    endpoint: String,
    key: Option<ApiKey>,
    options: HttpOptions,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("endpoint", &self.endpoint)
            .field("api_key", &self.key.as_ref().map(|_| "[redacted]"))
            .field("options", &self.options)
            .finish()
    }
}

/// One try's outcome, before retry decisions.
enum Attempt {
    Ok(Value),
    /// Final: no retry.
    Fail(LlmError),
    RateLimited(Option<Duration>, String),
    /// 5xx (`Some(status)`) or transport (`None`).
    Transient(Option<u16>, String),
}

impl HttpClient {
    pub(crate) fn new(
        base_url: &str,
        key: Option<ApiKey>,
        options: HttpOptions,
    ) -> Result<HttpClient, LlmError> {
        let base = base_url.trim().trim_end_matches('/').to_owned();
        let scrub = |s: &str| scrub_with(key.as_ref(), s);
        let endpoint = match reqwest::Url::parse(&base) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => {
                let mut shown = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
                if let Some(port) = url.port() {
                    shown.push_str(&format!(":{port}"));
                }
                shown.push_str(url.path().trim_end_matches('/'));
                shown
            }
            _ => {
                return Err(LlmError::Misconfigured {
                    endpoint: scrub(&strip_userinfo(&base)),
                    message: "the base URL is not an http(s) URL".to_owned(),
                });
            }
        };
        let http = reqwest::Client::builder()
            .connect_timeout(options.connect_timeout)
            .timeout(options.request_timeout)
            // A redirect could carry the key to another host (reqwest strips `Authorization`
            // across hosts, not `x-api-key`); an API endpoint that redirects is misconfigured.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| LlmError::Misconfigured {
                endpoint: endpoint.clone(),
                message: scrub(&format!("cannot build the HTTP client: {}", describe(e))),
            })?;
        Ok(HttpClient {
            http,
            base,
            endpoint,
            key,
            options,
        })
    }

    /// The base URL as shown in errors.
    pub(crate) fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub(crate) fn key(&self) -> Option<&ApiKey> {
        self.key.as_ref()
    }

    /// An error about this endpoint's answer.
    pub(crate) fn bad_response(&self, message: impl AsRef<str>) -> LlmError {
        LlmError::BadResponse {
            endpoint: self.endpoint.clone(),
            message: self.scrub(message.as_ref()),
        }
    }

    /// A header carrying the key, marked sensitive (never printed by reqwest/hyper).
    pub(crate) fn key_header(&self, value: String) -> Result<HeaderValue, LlmError> {
        let mut value = HeaderValue::from_str(&value).map_err(|_| LlmError::Misconfigured {
            endpoint: self.endpoint.clone(),
            message: "the API key contains characters not allowed in an HTTP header".to_owned(),
        })?;
        value.set_sensitive(true);
        Ok(value)
    }

    /// POSTs `body` to `{base}{path}` with `headers`, retrying as the options say: the JSON
    /// answer of a 2xx.
    pub(crate) async fn post_json(
        &self,
        path: &str,
        headers: &[(HeaderName, HeaderValue)],
        body: &Value,
    ) -> Result<Value, LlmError> {
        let url = format!("{}{}", self.base, path);
        let mut header_map = HeaderMap::new();
        for (name, value) in headers {
            header_map.insert(name.clone(), value.clone());
        }
        let attempts = self.options.attempts.max(1);
        let mut delay = self.options.base_delay;
        let mut last: Option<LlmError> = None;
        for attempt in 1..=attempts {
            let mut backoff = || {
                let d = delay;
                delay = (delay * 2).min(self.options.max_delay);
                d
            };
            let wait = match self.attempt(&url, &header_map, body).await {
                Attempt::Ok(value) => return Ok(value),
                Attempt::Fail(e) => return Err(e),
                Attempt::RateLimited(retry_after, message) => {
                    let err = LlmError::RateLimited {
                        endpoint: self.endpoint.clone(),
                        retry_after,
                        message,
                    };
                    match retry_after {
                        Some(d) if d > self.options.max_retry_after => return Err(err),
                        Some(d) => {
                            last = Some(err);
                            d
                        }
                        None => {
                            last = Some(err);
                            backoff()
                        }
                    }
                }
                Attempt::Transient(status, message) => {
                    last = Some(match status {
                        Some(status) => LlmError::ServerError {
                            endpoint: self.endpoint.clone(),
                            status,
                            message,
                        },
                        None => LlmError::Unreachable {
                            endpoint: self.endpoint.clone(),
                            message,
                        },
                    });
                    backoff()
                }
            };
            if attempt < attempts {
                tracing::debug!(
                    endpoint = %self.endpoint,
                    attempt,
                    wait_ms = wait.as_millis() as u64,
                    error = %last.as_ref().map(ToString::to_string).unwrap_or_default(),
                    "LLM call failed; retrying"
                );
                tokio::time::sleep(wait).await;
            }
        }
        Err(last.unwrap_or_else(|| LlmError::Unreachable {
            endpoint: self.endpoint.clone(),
            message: "no attempt made".to_owned(),
        }))
    }

    async fn attempt(&self, url: &str, headers: &HeaderMap, body: &Value) -> Attempt {
        let response = match self
            .http
            .post(url)
            .headers(headers.clone())
            .json(body)
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => return Attempt::Transient(None, self.scrub(&describe(e))),
        };
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers());
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = match response.bytes().await {
            Ok(b) => b,
            Err(e) => return Attempt::Transient(None, self.scrub(&describe(e))),
        };
        self.classify(status, retry_after, location, &bytes)
    }

    fn classify(
        &self,
        status: u16,
        retry_after: Option<Duration>,
        location: Option<String>,
        bytes: &[u8],
    ) -> Attempt {
        let endpoint = || self.endpoint.clone();
        if (200..300).contains(&status) {
            return match serde_json::from_slice::<Value>(bytes) {
                Ok(value) if value.is_object() => Attempt::Ok(value),
                Ok(_) => Attempt::Fail(
                    self.bad_response(format!("HTTP {status}: the body is JSON but not an object")),
                ),
                Err(e) => Attempt::Fail(self.bad_response(format!(
                    "HTTP {status}: the body is not JSON ({e}): {}",
                    snippet(bytes)
                ))),
            };
        }
        let message = self.scrub(&error_message(bytes));
        match status {
            429 => Attempt::RateLimited(retry_after, message),
            408 | 500..=599 => Attempt::Transient(Some(status), message),
            401 | 403 => Attempt::Fail(LlmError::Misconfigured {
                endpoint: endpoint(),
                message: format!(
                    "the API key was refused (HTTP {status}; check AGENTICAI_LLM_API_KEY): {message}"
                ),
            }),
            404 => Attempt::Fail(LlmError::Misconfigured {
                endpoint: endpoint(),
                message: format!(
                    "model or endpoint not found (HTTP 404; check AGENTICAI_LLM_MODEL and \
                     AGENTICAI_LLM_BASE_URL): {message}"
                ),
            }),
            300..=399 => Attempt::Fail(LlmError::Misconfigured {
                endpoint: endpoint(),
                message: self.scrub(&format!(
                    "the endpoint redirects (HTTP {status}{}); set AGENTICAI_LLM_BASE_URL to the \
                     final address",
                    location
                        .map(|l| format!(" to {}", strip_userinfo(&l)))
                        .unwrap_or_default()
                )),
            }),
            400..=499 => Attempt::Fail(LlmError::Rejected {
                endpoint: endpoint(),
                status,
                message,
            }),
            _ => Attempt::Fail(self.bad_response(format!("unexpected HTTP {status}: {message}"))),
        }
    }

    /// Removes the key from a message (defence in depth: provider messages and transport errors
    /// should never contain it, but some echo what they were sent).
    pub(crate) fn scrub(&self, message: &str) -> String {
        scrub_with(self.key.as_ref(), message)
    }
}

fn scrub_with(key: Option<&ApiKey>, message: &str) -> String {
    match key {
        Some(key) if !key.expose().is_empty() => message.replace(key.expose(), "[redacted]"),
        _ => message.to_owned(),
    }
}

/// `scheme://user:pass@host/…` → `scheme://host/…`.
fn strip_userinfo(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.to_string()
        }
        Err(_) => url.chars().take(200).collect(),
    }
}

/// `retry-after-ms` (OpenAI) or `retry-after` in seconds; HTTP dates are ignored (backoff).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_millis(ms.min(1e9) as u64));
    }
    get("retry-after")
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| Duration::from_secs_f64(s.min(1e6)))
}

/// The provider's message from an error body: `{"error":{"message":…}}` (OpenAI, Anthropic),
/// `{"error":"…"}` (Ollama, llama.cpp), `{"message":…}` or `{"detail":…}` (vLLM/FastAPI), or
/// the start of the body.
pub(crate) fn error_message(bytes: &[u8]) -> String {
    let text = match serde_json::from_slice::<Value>(bytes) {
        Ok(body) => {
            let found = [
                "/error/message",
                "/error",
                "/message",
                "/detail",
                "/detail/0/msg",
            ]
            .iter()
            .find_map(|p| body.pointer(p).and_then(Value::as_str));
            match found {
                Some(s) => s.to_owned(),
                None => snippet(bytes),
            }
        }
        Err(_) => snippet(bytes),
    };
    let text: String = text.chars().take(MAX_MESSAGE).collect();
    if text.trim().is_empty() {
        "no message".to_owned()
    } else {
        text
    }
}

/// The start of a body, for an error message.
fn snippet(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut s: String = text
        .chars()
        .take(200)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().count() > 200 {
        s.push('…');
    }
    if s.trim().is_empty() {
        "empty body".to_owned()
    } else {
        s
    }
}

/// A reqwest error as text, without its URL.
fn describe(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "reading the response failed"
    } else {
        "request failed"
    };
    let e = e.without_url();
    let mut message = format!("{kind}: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> HttpClient {
        HttpClient::new(
            "http://user:pw@127.0.0.1:9/v1/?x=1",
            Some(ApiKey::new("sk-SECRET")),
            HttpOptions::default(),
        )
        .unwrap()
    }

    #[test]
    fn the_endpoint_label_has_no_credentials() {
        let c = client();
        assert_eq!(c.endpoint(), "http://127.0.0.1:9/v1");
        assert!(!format!("{c:?}").contains("SECRET"));
        assert!(matches!(
            HttpClient::new("ftp://x", None, HttpOptions::default()),
            Err(LlmError::Misconfigured { .. })
        ));
    }

    #[test]
    fn answers_are_classified() {
        let c = client();
        assert!(matches!(
            c.classify(200, None, None, br#"{"a":1}"#),
            Attempt::Ok(_)
        ));
        assert!(matches!(
            c.classify(200, None, None, b"<html>"),
            Attempt::Fail(LlmError::BadResponse { .. })
        ));
        assert!(matches!(
            c.classify(429, Some(Duration::from_secs(2)), None, b"{}"),
            Attempt::RateLimited(Some(_), _)
        ));
        assert!(matches!(
            c.classify(529, None, None, b"{}"),
            Attempt::Transient(Some(529), _)
        ));
        assert!(matches!(
            c.classify(401, None, None, br#"{"error":{"message":"bad key sk-SECRET"}}"#),
            Attempt::Fail(LlmError::Misconfigured { message, .. }) if !message.contains("SECRET") && message.contains("bad key")
        ));
        assert!(matches!(
            c.classify(400, None, None, br#"{"error":"context too long"}"#),
            Attempt::Fail(LlmError::Rejected { status: 400, message, .. }) if message == "context too long"
        ));
        assert!(matches!(
            c.classify(307, None, Some("https://a:b@elsewhere/x".into()), b""),
            Attempt::Fail(LlmError::Misconfigured { message, .. }) if !message.contains("a:b")
        ));
    }

    #[test]
    fn retry_after_headers() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("3"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert("retry-after-ms", HeaderValue::from_static("250"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(250)));
        let mut h = HeaderMap::new();
        h.insert(
            "retry-after",
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), None);
    }
}
