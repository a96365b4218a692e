//! An async client for remote job submission: `submit_rpc_handler.php` and
//! `get_output.php` of a BOINC project, over HTTP or HTTPS.
//!
//! HTTP is reqwest (the maintained async client on tokio), built without
//! default features: HTTP/1.1 only, which is all the PHP handlers need, and
//! rustls with the `ring` provider for `https://` project URLs (no OpenSSL,
//! no aws-lc C build), verifying certificates against the system's store.
//!
//! The request bodies and the reply parsers are those of [`crate::remote`];
//! this module only moves them. Every reply of the handler is HTTP 200,
//! errors included, so the status is checked for transport failures only and
//! the body decides. Reply bodies are read up to a limit, never whole on
//! trust.

use std::time::Duration;

use crate::remote::{self, Batch, BatchRef, BatchStatus, CompletedJob, JobInstance, RemoteError};

/// Most bytes of an RPC reply read.
const REPLY_MAX: u64 = 64 * 1024 * 1024;

/// Errors of remote calls.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The HTTP exchange failed (connection, TLS, timeout).
    #[error("HTTP request to {url} failed: {message}")]
    Http {
        /// The URL (without query, which may hold an `auth_str`).
        url: String,
        /// What failed.
        message: String,
    },
    /// The server answered with a status other than 200.
    #[error("{url} answered HTTP {status}{}", location.as_ref().map(|l| format!(", redirecting to {l} (give that URL instead)")).unwrap_or_default())]
    Status {
        /// The URL (without query).
        url: String,
        /// The status code.
        status: u16,
        /// Where a redirect points.
        location: Option<String>,
    },
    /// The reply is larger than allowed.
    #[error("reply from {url} is larger than {limit} bytes")]
    TooLarge {
        /// The URL (without query).
        url: String,
        /// The limit.
        limit: u64,
    },
    /// The server's reply says the request failed, or cannot be read.
    #[error(transparent)]
    Remote(#[from] RemoteError),
}

/// Installs `ring` as the process's rustls provider (once); reqwest is built
/// without one.
fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A project's remote-submission interface, for one user.
#[derive(Clone)]
pub struct RemoteClient {
    http: reqwest::Client,
    project_url: String,
    authenticator: String,
}

impl std::fmt::Debug for RemoteClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteClient")
            .field("project_url", &self.project_url)
            .finish_non_exhaustive()
    }
}

impl RemoteClient {
    /// A client for the project at `project_url` (its master URL, e.g.
    /// `https://example.org/myproject/`) acting as the user whose account
    /// key is `authenticator`.
    pub fn new(project_url: &str, authenticator: &str) -> Result<Self, ClientError> {
        install_crypto_provider();
        let http = reqwest::Client::builder()
            // A redirect would turn the POST of an RPC into a GET (an
            // http:// URL redirected to https://, say); report it instead.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(30))
            .timeout(Duration::from_secs(600))
            .user_agent(concat!("pymw-boinc/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Http {
                url: project_url.to_owned(),
                message: e.to_string(),
            })?;
        Ok(RemoteClient {
            http,
            project_url: project_url.to_owned(),
            authenticator: authenticator.to_owned(),
        })
    }

    /// The project URL.
    pub fn project_url(&self) -> &str {
        &self.project_url
    }

    /// POSTs one request document and returns the reply body.
    pub async fn rpc(&self, request_xml: &str) -> Result<Vec<u8>, ClientError> {
        let url = remote::submit_rpc_url(&self.project_url);
        let response = self
            .http
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, remote::FORM_CONTENT_TYPE)
            .body(remote::form_body(request_xml))
            .send()
            .await
            .map_err(|e| http_error(&url, &e))?;
        let (_, body) = read_body(&url, response, REPLY_MAX).await?;
        Ok(body)
    }

    /// `ping`: checks the authenticator.
    pub async fn ping(&self) -> Result<(), ClientError> {
        let body = self
            .rpc(&remote::ping_request(&self.authenticator)?)
            .await?;
        Ok(remote::parse_success(&body, "ping")?)
    }

    /// `submit_batch`: returns the batch id.
    pub async fn submit_batch(&self, batch: &Batch) -> Result<u64, ClientError> {
        let body = self
            .rpc(&remote::submit_batch_request(&self.authenticator, batch)?)
            .await?;
        Ok(remote::parse_submit_batch(&body)?)
    }

    /// `query_batch`, with job details.
    pub async fn query_batch(
        &self,
        batch: &BatchRef,
        details: bool,
    ) -> Result<BatchStatus, ClientError> {
        let request = remote::query_batch_request(&self.authenticator, batch, true, details)?;
        let body = self.rpc(&request).await?;
        Ok(remote::parse_query_batch(&body)?)
    }

    /// `query_job`: the instances (results) of a job.
    pub async fn query_job(&self, job_id: u64) -> Result<Vec<JobInstance>, ClientError> {
        let body = self
            .rpc(&remote::query_job_request(&self.authenticator, job_id)?)
            .await?;
        Ok(remote::parse_query_job(&body)?)
    }

    /// `query_completed_job`: outcome and stderr of a finished job.
    pub async fn query_completed_job(&self, job_name: &str) -> Result<CompletedJob, ClientError> {
        let body = self
            .rpc(&remote::query_completed_job_request(
                &self.authenticator,
                job_name,
            )?)
            .await?;
        Ok(remote::parse_query_completed_job(&body)?)
    }

    /// `abort_jobs`: returns the names the server reports aborted.
    pub async fn abort_jobs<S: AsRef<str>>(
        &self,
        job_names: &[S],
    ) -> Result<Vec<String>, ClientError> {
        let body = self
            .rpc(&remote::abort_jobs_request(&self.authenticator, job_names)?)
            .await?;
        Ok(remote::parse_abort_jobs(&body)?)
    }

    /// `retire_batch`: lets the server delete the batch's files.
    pub async fn retire_batch(&self, batch_id: u64) -> Result<(), ClientError> {
        let body = self
            .rpc(&remote::retire_batch_request(
                &self.authenticator,
                batch_id,
            )?)
            .await?;
        Ok(remote::parse_success(&body, "retire_batch")?)
    }

    /// The stderr of result `result_id` as the project's public task page
    /// `result.php?resultid=ID` shows it: how the stderr of a failed job is
    /// read where `query_completed_job` cannot (a PHP fatal error in 7.20.5
    /// for jobs without a canonical result). `None` when the page holds no
    /// stderr section.
    pub async fn result_page_stderr(&self, result_id: u64) -> Result<Option<String>, ClientError> {
        let url = format!("{}result.php?resultid={result_id}", self.project_url);
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| http_error(&url, &e))?;
        let (_, body) = read_body(&url, response, REPLY_MAX).await?;
        Ok(remote::parse_result_page_stderr(&String::from_utf8_lossy(
            &body,
        )))
    }

    /// Output file `file_num` of a result, through `get_output.php` with
    /// `auth_str = md5(authenticator + result name)`; at most `limit` bytes.
    pub async fn result_file(
        &self,
        result_name: &str,
        file_num: u32,
        limit: u64,
    ) -> Result<Vec<u8>, ClientError> {
        let url = remote::result_file_url(
            &self.project_url,
            &self.authenticator,
            result_name,
            file_num,
        );
        let shown = remote::submit_rpc_url(&self.project_url)
            .replace(remote::SUBMIT_RPC_HANDLER, remote::GET_OUTPUT);
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| http_error(&shown, &e))?;
        let (content_type, body) = read_body(&shown, response, limit).await?;
        remote::check_get_output(content_type.as_deref(), &body)?;
        Ok(body)
    }
}

fn http_error(url: &str, e: &reqwest::Error) -> ClientError {
    use std::error::Error as _;
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    ClientError::Http {
        url: url.to_owned(),
        message,
    }
}

/// The content type and body of a 200 reply, at most `limit` bytes.
async fn read_body(
    url: &str,
    mut response: reqwest::Response,
    limit: u64,
) -> Result<(Option<String>, Vec<u8>), ClientError> {
    let status = response.status().as_u16();
    if status != 200 {
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        return Err(ClientError::Status {
            url: url.to_owned(),
            status,
            location,
        });
    }
    let too_large = || ClientError::TooLarge {
        url: url.to_owned(),
        limit,
    };
    if response.content_length().is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| http_error(url, &e))? {
        if body.len() as u64 + chunk.len() as u64 > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok((content_type, body))
}
