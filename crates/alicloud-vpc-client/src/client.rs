//! The VPC client: one [`VpcClientFactory`] per process (one connection pool, one rate limiter
//! per account, one metrics hook), and cheap per-region, per-credentials [`VpcClient`]s made
//! from it.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tracing::Instrument as _;
use url::Url;

use super::credentials::{Credentials, CredentialsProvider};
use super::endpoint::Endpoint;
use super::listing::read_whole_list;
use super::observe::{CallObserver, CallRecord, ListRecord};
use super::operations::*;
use super::rate_limit::{Priority, RateLimitConfig, RateLimiter, class_of_call};
use super::retry::{Failed, Next, RetryPolicy};
use super::rpc::{
    CommonParams, encode_form, parse_response, retry_after_from_headers, signed_params,
};
use crate::class::ErrorClass;
use crate::error::CloudError;

/// Answers larger than this are refused: the largest real answer (a 50-entry page) is a few KiB.
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Page size of `DescribeVpnPbrRouteEntries` (the API's maximum).
pub const PBR_PAGE_SIZE: u32 = 50;

/// Settings shared by every client a factory makes.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub endpoint: Endpoint,
    /// Where the STS calls (`GetCallerIdentity`) go: the region's STS endpoint by default.
    pub sts_endpoint: Endpoint,
    pub connect_timeout: Duration,
    /// Longest wait for each read from the socket.
    pub read_timeout: Duration,
    /// Longest time for a whole attempt.
    pub request_timeout: Duration,
    pub rate_limit: RateLimitConfig,
    pub retry: RetryPolicy,
    pub user_agent: String,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            endpoint: Endpoint::Public,
            sts_endpoint: Endpoint::Public,
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(15),
            request_timeout: Duration::from_secs(30),
            rate_limit: RateLimitConfig::default(),
            retry: RetryPolicy::default(),
            user_agent: concat!("vpn-pbr-operator/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

/// The account key of the clients of [`VpcClientFactory::client`], which name no account.
/// Empty, so it is never the name of a Kubernetes object.
pub const DEFAULT_ACCOUNT: &str = "";

struct Shared {
    http: reqwest::Client,
    /// The limiter of [`DEFAULT_ACCOUNT`], also in `limiters`.
    default_limiter: Arc<RateLimiter>,
    /// One limiter per account key: the cloud's flow control is per account, so one
    /// account's throttling must not slow another's calls. Never shrinks: keys are accounts,
    /// and a process serves a handful of them.
    limiters: Mutex<HashMap<String, Arc<RateLimiter>>>,
    config: ClientConfig,
    observer: Option<Arc<dyn CallObserver>>,
}

impl Shared {
    /// Fresh rate limiters from `config`, with the HTTP client and hook given.
    fn new(
        http: reqwest::Client,
        config: ClientConfig,
        observer: Option<Arc<dyn CallObserver>>,
    ) -> Arc<Self> {
        let default_limiter = Arc::new(RateLimiter::new(config.rate_limit));
        let limiters = HashMap::from([(DEFAULT_ACCOUNT.to_owned(), default_limiter.clone())]);
        Arc::new(Self {
            http,
            default_limiter,
            limiters: Mutex::new(limiters),
            config,
            observer,
        })
    }

    /// The limiter of `account`, made on first use with the factory's settings.
    fn limiter(&self, account: &str) -> Arc<RateLimiter> {
        let mut limiters = self.limiters.lock().unwrap_or_else(PoisonError::into_inner);
        limiters
            .entry(account.to_owned())
            .or_insert_with(|| Arc::new(RateLimiter::new(self.config.rate_limit)))
            .clone()
    }
}

/// Makes [`VpcClient`]s that share one connection pool, one rate limiter per account and one
/// metrics hook. Cheap to clone.
#[derive(Clone)]
pub struct VpcClientFactory {
    shared: Arc<Shared>,
}

impl VpcClientFactory {
    /// Builds the shared HTTP client (rustls; the process must have installed a rustls crypto
    /// provider at start).
    pub fn new(config: ClientConfig) -> Result<Self, CloudError> {
        ensure_crypto_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.read_timeout)
            .timeout(config.request_timeout)
            .user_agent(config.user_agent.clone())
            .build()
            .map_err(|e| CloudError::Config(format!("HTTP client: {e}")))?;
        Ok(Self::with_http_client(http, config))
    }

    /// Uses a ready HTTP client (its own timeouts apply; those in `config` are ignored).
    pub fn with_http_client(http: reqwest::Client, config: ClientConfig) -> Self {
        Self {
            shared: Shared::new(http, config, None),
        }
    }

    /// Sets the hook called after every attempt. Call before handing out clones.
    pub fn with_observer(self, observer: Arc<dyn CallObserver>) -> Self {
        let shared = &self.shared;
        Self {
            shared: Shared::new(shared.http.clone(), shared.config.clone(), Some(observer)),
        }
    }

    /// The shared HTTP client, e.g. for [`OidcProvider`](super::OidcProvider).
    pub fn http_client(&self) -> &reqwest::Client {
        &self.shared.http
    }

    /// The rate limiter of [`DEFAULT_ACCOUNT`] (the clients of [`client`](Self::client)).
    pub fn rate_limiter(&self) -> &RateLimiter {
        &self.shared.default_limiter
    }

    /// The rate limiter of the clients of `account` (made now if none has been yet).
    pub fn account_rate_limiter(&self, account: &str) -> Arc<RateLimiter> {
        self.shared.limiter(account)
    }

    /// Sets the calls per second of `account`'s limiter while nothing is throttled: `Some`
    /// its own rate (the cloud's flow control is per account, and accounts differ), `None`
    /// the factory's (`ClientConfig::rate_limit`). The limiter is made now if none has been
    /// yet; on an existing one the new rate applies to its clients and waiting calls at once
    /// ([`RateLimiter::set_max_rate`]), which keep their [`Priority`] order. Cheap when the
    /// rate is unchanged, so a caller may set it before every call.
    pub fn set_account_rate(&self, account: &str, max_rate: Option<f64>) {
        let rate = max_rate.unwrap_or(self.shared.config.rate_limit.max_rate);
        self.shared.limiter(account).set_max_rate(rate);
    }

    /// The STS endpoint of `region` in this factory's settings (`ClientConfig::sts_endpoint`),
    /// e.g. for [`AssumeRoleConfig`](super::AssumeRoleConfig).
    pub fn sts_url_for(&self, region: &str) -> Result<Url, CloudError> {
        self.shared.config.sts_endpoint.sts_url_for(region)
    }

    /// A client for one region and one set of credentials, under the rate limiter of
    /// [`DEFAULT_ACCOUNT`]. Cheap: no new connections.
    pub fn client(
        &self,
        region: &str,
        credentials: Arc<dyn CredentialsProvider>,
    ) -> Result<VpcClient, CloudError> {
        self.client_for_account(DEFAULT_ACCOUNT, region, credentials)
    }

    /// A client whose calls wait at the rate limiter of `account`: the clients of one account
    /// key share one limiter (one token bucket, one AIMD rate, the [`Priority`] order), those
    /// of different keys never wait for each other. The key is the caller's name for the
    /// cloud account the credentials act for (e.g. the name of the object that configures the
    /// account); give every set of credentials of one cloud account the same key. (Two keys
    /// for one account each start at the full rate; the cloud's throttling then halves both.)
    pub fn client_for_account(
        &self,
        account: &str,
        region: &str,
        credentials: Arc<dyn CredentialsProvider>,
    ) -> Result<VpcClient, CloudError> {
        let url = self.shared.config.endpoint.url_for(region)?;
        let sts_url = self.sts_url_for(region)?;
        Ok(VpcClient {
            inner: Arc::new(ClientInner {
                shared: self.shared.clone(),
                limiter: self.shared.limiter(account),
                account: account.to_owned(),
                region: region.to_owned(),
                url,
                sts_url,
                credentials,
            }),
        })
    }
}

/// Shows the configuration only: the HTTP client, limiter and hook are left out.
impl fmt::Debug for VpcClientFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VpcClientFactory")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

struct ClientInner {
    shared: Arc<Shared>,
    /// The limiter of `account`.
    limiter: Arc<RateLimiter>,
    account: String,
    region: String,
    url: Url,
    /// The region's STS endpoint (`GetCallerIdentity`).
    sts_url: Url,
    credentials: Arc<dyn CredentialsProvider>,
}

/// Signed client of the VPC API for one region and one credentials provider. Cheap to clone.
#[derive(Clone)]
pub struct VpcClient {
    inner: Arc<ClientInner>,
}

impl fmt::Debug for VpcClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VpcClient")
            .field("account", &self.inner.account)
            .field("region", &self.inner.region)
            .field("url", &self.inner.url.as_str())
            .field("credentials", &self.inner.credentials.name())
            .finish()
    }
}

/// The typed entry point of each operation: [`VpcClient::call`] with its request and answer.
macro_rules! operation_calls {
    ($($(#[$attr:meta])* $name:ident($req:ty) -> $resp:ty;)*) => {
        $(
            $(#[$attr])*
            pub async fn $name(&self, req: &$req) -> Result<$resp, CloudError> {
                self.call(req).await
            }
        )*
    };
}

impl VpcClient {
    pub fn region(&self) -> &str {
        &self.inner.region
    }

    /// The account key whose rate limiter this client's calls wait at.
    pub fn account(&self) -> &str {
        &self.inner.account
    }

    pub fn endpoint(&self) -> &Url {
        &self.inner.url
    }

    operation_calls! {
        /// `CreateVpnPbrRouteEntry`. Pass the `client_token` stored before the call so a retry
        /// after a lost answer or a restart cannot create a second entry.
        create_vpn_pbr_route_entry(CreateVpnPbrRouteEntryRequest)
            -> CreateVpnPbrRouteEntryResponse;
        delete_vpn_pbr_route_entry(DeleteVpnPbrRouteEntryRequest) -> ActionResponse;
        /// One page of `DescribeVpnPbrRouteEntries`.
        describe_vpn_pbr_route_entries(DescribeVpnPbrRouteEntriesRequest)
            -> DescribeVpnPbrRouteEntriesResponse;
    }

    /// Every entry of a gateway, 50 a page, as it was at one moment, or
    /// [`CloudError::ListInconsistent`]: never a list that may lack a live entry. The pages are
    /// read (in order, again from the first after the last) until they prove the whole list at
    /// the moment of one read (the rule is in `src/listing.rs`): a list of one page costs one
    /// read, a stable list of `n` pages `2n - 1`; pages that change or move between reads cost
    /// more, and after [`LIST_PASSES`](crate::LIST_PASSES) times its pages the list is given up on.
    pub async fn list_vpn_pbr_route_entries(
        &self,
        vpn_gateway_id: &str,
    ) -> Result<VpnPbrRouteEntryList, CloudError> {
        let read = read_whole_list(PBR_PAGE_SIZE, |page| async move {
            self.describe_vpn_pbr_route_entries(&DescribeVpnPbrRouteEntriesRequest {
                vpn_gateway_id: vpn_gateway_id.to_owned(),
                page_number: Some(page),
                page_size: Some(PBR_PAGE_SIZE),
            })
            .await
        })
        .await;
        let (reads, complete) = match &read {
            Ok(list) => (list.reads, true),
            Err(CloudError::ListInconsistent { reads, .. }) => (*reads, false),
            Err(_) => return read,
        };
        self.notify(|observer, region| {
            observer.observe_list(&ListRecord {
                action: DescribeVpnPbrRouteEntriesRequest::ACTION,
                region,
                reads,
                complete,
            });
        });
        read
    }

    operation_calls! {
        modify_vpn_pbr_route_entry_weight(ModifyVpnPbrRouteEntryWeightRequest) -> ActionResponse;
        modify_vpn_pbr_route_entry_priority(ModifyVpnPbrRouteEntryPriorityRequest)
            -> ActionResponse;
        modify_vpn_pbr_route_entry_attribute(ModifyVpnPbrRouteEntryAttributeRequest)
            -> ActionResponse;
        publish_vpn_route_entry(PublishVpnRouteEntryRequest) -> ActionResponse;
        describe_vpn_gateway(DescribeVpnGatewayRequest) -> DescribeVpnGatewayResponse;
        describe_vpn_connection(DescribeVpnConnectionRequest) -> DescribeVpnConnectionResponse;
    }

    /// STS `GetCallerIdentity`: the account these credentials act for (the one whose
    /// gateways they see) and who they are. Sent to the STS endpoint; the account of a key
    /// never changes, so callers may keep the answer per key.
    pub async fn get_caller_identity(&self) -> Result<GetCallerIdentityResponse, CloudError> {
        self.call(&GetCallerIdentityRequest::default()).await
    }

    /// Sends `req` with `DryRun=true`: the cloud checks everything it would check for the real
    /// call (parameters, permissions, quota, next hop, conflicts) and changes nothing.
    /// `Ok(DryRunPassed)` means the call would have succeeded (the cloud's HTTP 400
    /// `DryRunOperation`); any other refusal is the usual [`CloudError`]. A server that answers
    /// with success has ignored `DryRun` (and may have carried the call out): that is an error
    /// too, never a pass.
    pub async fn dry_run<O: DryRunnable>(&self, req: &O) -> Result<DryRunPassed, CloudError> {
        let mut req = req.clone();
        req.set_dry_run(Some(true));
        match self.call(&req).await {
            Err(e) if e.is_dry_run_ok() => Ok(DryRunPassed {
                action: O::ACTION,
                request_id: e.request_id().map(str::to_owned),
            }),
            Err(e) => Err(e),
            Ok(_) => Err(CloudError::MalformedResponse {
                action: O::ACTION,
                http_status: 200,
                request_id: None,
                detail: "a DryRun=true call was answered with success: the server ignored \
                         DryRun and may have carried the call out"
                    .to_owned(),
            }),
        }
    }

    /// `CreateVpnPbrRouteEntry` with `DryRun=true` (see [`dry_run`](Self::dry_run)).
    pub async fn dry_run_create_vpn_pbr_route_entry(
        &self,
        req: &CreateVpnPbrRouteEntryRequest,
    ) -> Result<DryRunPassed, CloudError> {
        self.dry_run(req).await
    }

    /// Runs any [`Operation`]: adds `RegionId` (VPC operations) and (for mutations without one)
    /// a `ClientToken`, then signs, sends, retries what is safe and classifies the answer. At
    /// the rate limiter it takes [`class_of_call`]'s class.
    pub async fn call<O: Operation>(&self, req: &O) -> Result<O::Response, CloudError> {
        let mut params = to_params(req)?;
        if O::API == Api::Vpc {
            params
                .entry("RegionId".to_owned())
                .or_insert_with(|| self.inner.region.clone());
        }
        if O::MUTATING {
            // One token for every attempt of this call makes retrying a mutation safe.
            params
                .entry("ClientToken".to_owned())
                .or_insert_with(|| uuid::Uuid::new_v4().to_string());
        }
        let priority = class_of_call(O::MUTATING);
        let span = tracing::debug_span!(
            "vpc_call",
            action = O::ACTION,
            region = %self.inner.region,
            %priority,
            request_id = tracing::field::Empty,
            attempt = tracing::field::Empty,
        );
        self.call_with_retries::<O>(&params, priority)
            .instrument(span)
            .await
    }

    async fn call_with_retries<O: Operation>(
        &self,
        params: &BTreeMap<String, String>,
        priority: Priority,
    ) -> Result<O::Response, CloudError> {
        let limiter = &self.inner.limiter;
        let retries = self.inner.shared.config.retry;
        // Reads are always safe to repeat; mutations are because `call` pinned a ClientToken.
        let repeatable = !O::MUTATING || params.contains_key("ClientToken");
        let mut attempt = 0u32;
        let mut renewed = false;
        loop {
            attempt += 1;
            tracing::Span::current().record("attempt", attempt);
            let queued = tokio::time::Instant::now();
            // Retries keep the call's class: a retried mutation is still the gateway's next
            // change.
            limiter.acquire(priority).await;
            let tries = Tries {
                attempt,
                priority,
                rate_limit_wait: queued.elapsed(),
            };
            let started = Instant::now();
            let signed_with = self.inner.credentials.credentials().await;
            let result = match &signed_with {
                Ok(credentials) => self.attempt::<O>(params, credentials).await,
                Err(e) => Err(e.clone().into()),
            };
            let latency = started.elapsed();
            // Kept from leaving by the caller's gate: not a call, nothing to count or retry.
            if let Err(e) = &result
                && e.is_not_sent()
            {
                return Err(e.clone());
            }
            match result {
                Ok((response, request_id)) => {
                    limiter.on_success();
                    if let Some(id) = &request_id {
                        tracing::Span::current().record("request_id", id.as_str());
                    }
                    tracing::debug!(?latency, "VPC call succeeded");
                    self.observe(
                        O::ACTION,
                        "Success",
                        None,
                        Some(200),
                        request_id.as_deref(),
                        latency,
                        tries,
                    );
                    return Ok(response);
                }
                Err(e) => {
                    let policy = e.policy();
                    let class = policy.class;
                    if let Some(id) = e.request_id() {
                        tracing::Span::current().record("request_id", id);
                    }
                    self.observe(
                        O::ACTION,
                        e.code(),
                        Some(class),
                        e.http_status(),
                        e.request_id(),
                        latency,
                        tries,
                    );
                    if class == ErrorClass::Throttled {
                        limiter.on_throttled();
                    }
                    let session = signed_with.as_ref().ok().filter(|c| c.is_session());
                    let next = retries.next(Failed {
                        retried_by: policy.retried_by,
                        attempt,
                        repeatable,
                        session: session.is_some(),
                        renewed,
                    });
                    if let (Next::Renew { .. }, Some(used)) = (next, session) {
                        self.inner.credentials.invalidate(used);
                        renewed = true;
                    }
                    match next {
                        Next::Return | Next::Renew { retry: false } => {
                            tracing::debug!(error = %e, class = %class, "VPC call failed");
                            return Err(e);
                        }
                        Next::Renew { retry: true } => {
                            tracing::debug!(error = %e, "VPC call failed; retrying with a new session");
                        }
                        Next::Retry => {
                            let delay = retries.delay(attempt, e.retry_after());
                            tracing::debug!(error = %e, class = %class, ?delay, "VPC call failed; retrying");
                            tokio::time::sleep(delay).await;
                        }
                    }
                }
            }
        }
    }

    /// One request signed with `credentials`. Everything goes in the POST body, so URLs (which
    /// reqwest errors and proxies may log) never carry the signature or the STS token.
    async fn attempt<O: Operation>(
        &self,
        params: &BTreeMap<String, String>,
        credentials: &Credentials,
    ) -> Result<(O::Response, Option<String>), CloudError> {
        let nonce = uuid::Uuid::new_v4().to_string();
        let timestamp = crate::rpc::timestamp_now();
        let common = CommonParams {
            action: O::ACTION,
            version: O::API.version(),
            nonce: &nonce,
            timestamp: &timestamp,
        };
        let signed = signed_params("POST", &common, params, credentials);
        let url = match O::API {
            Api::Vpc => &self.inner.url,
            Api::Sts => &self.inner.sts_url,
        };
        crate::send_gate::check(O::ACTION)?;
        let response = self
            .inner
            .shared
            .http
            .post(url.clone())
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(encode_form(&signed))
            .send()
            .await
            .map_err(|e| CloudError::transport(O::ACTION, e))?;
        let status = response.status().as_u16();
        let content_type = crate::body::content_type(response.headers());
        let retry_after = retry_after_from_headers(response.headers());
        let bytes = read_body(O::ACTION, status, response).await?;
        let parsed = parse_response::<O::Response>(
            O::ACTION,
            status,
            content_type.as_deref(),
            retry_after,
            &bytes,
        )?;
        let request_id = body_request_id(&bytes, content_type.as_deref());
        Ok((parsed, request_id))
    }

    /// Hands the factory's hook, if it has one, to `notify` with this client's region.
    fn notify(&self, notify: impl FnOnce(&dyn CallObserver, &str)) {
        if let Some(observer) = &self.inner.shared.observer {
            notify(observer.as_ref(), &self.inner.region);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn observe(
        &self,
        action: &'static str,
        code: &str,
        class: Option<ErrorClass>,
        http_status: Option<u16>,
        request_id: Option<&str>,
        latency: Duration,
        tries: Tries,
    ) {
        self.notify(|observer, region| {
            observer.observe(&CallRecord {
                action,
                account: &self.inner.account,
                region,
                code,
                class,
                http_status,
                request_id,
                latency,
                attempt: tries.attempt,
                priority: tries.priority,
                rate_limit_wait: tries.rate_limit_wait,
            });
        });
    }
}

/// Which attempt of a call this is, and what the rate limiter made it wait.
#[derive(Debug, Clone, Copy)]
struct Tries {
    attempt: u32,
    priority: Priority,
    rate_limit_wait: Duration,
}

/// A `DryRun=true` call that would have succeeded: every check passed, nothing changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DryRunPassed {
    pub action: &'static str,
    /// RequestId of the `DryRunOperation` answer.
    pub request_id: Option<String>,
}

impl CloudError {
    /// True for the answer to a `DryRun=true` call that would have succeeded (HTTP 400,
    /// code `DryRunOperation`). [`VpcClient::dry_run`] returns it as `Ok`.
    pub fn is_dry_run_ok(&self) -> bool {
        self.api().is_some_and(|e| e.code == DRY_RUN_OPERATION)
    }
}

/// reqwest panics when building a client without a rustls crypto provider; install ring (the
/// provider this crate is built with) if the process has none yet. Losing the race to another
/// installer is fine: any provider will do.
pub(crate) fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// Reads the body, refusing oversized answers without buffering them whole.
async fn read_body(
    action: &'static str,
    status: u16,
    mut response: reqwest::Response,
) -> Result<Vec<u8>, CloudError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| CloudError::transport(action, e))?
    {
        if bytes.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(CloudError::MalformedResponse {
                action,
                http_status: status,
                request_id: None,
                detail: format!("body larger than {MAX_BODY_BYTES} bytes"),
            });
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

fn body_request_id(bytes: &[u8], content_type: Option<&str>) -> Option<String> {
    super::body::decode(bytes, content_type)
        .ok()
        .and_then(|v| super::body::ErrorFields::from_value(&v).request_id)
}

/// Request fields as RPC parameters: strings as they are, numbers in decimal, booleans as
/// `true`/`false`.
fn to_params<T: serde::Serialize>(req: &T) -> Result<BTreeMap<String, String>, CloudError> {
    let value = serde_json::to_value(req)
        .map_err(|e| CloudError::Config(format!("request does not serialize: {e}")))?;
    let serde_json::Value::Object(map) = value else {
        return Err(CloudError::Config("request is not a struct".into()));
    };
    let mut params = BTreeMap::new();
    for (k, v) in map {
        let text = match v {
            serde_json::Value::Null => continue,
            serde_json::Value::String(s) => s,
            serde_json::Value::Bool(b) => b.to_string(),
            serde_json::Value::Number(n) => n.to_string(),
            other => other.to_string(),
        };
        params.insert(k, text);
    }
    Ok(params)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn requests_become_cloud_parameters() {
        let req = CreateVpnPbrRouteEntryRequest {
            publish_vpc: true,
            priority: Some(10),
            ..create_request()
        };
        let p = to_params(&req).unwrap();
        assert_eq!(p["VpnGatewayId"], "vpn-1");
        assert_eq!(p["RouteSource"], "192.168.1.0/24");
        assert_eq!(p["Weight"], "100");
        assert_eq!(p["PublishVpc"], "true");
        assert_eq!(p["Priority"], "10");
        assert!(!p.contains_key("Description"));
        assert!(!p.contains_key("ClientToken"));
        let gw = to_params(&DescribeVpnGatewayRequest {
            vpn_gateway_id: "vpn-1".into(),
            include_reservation_data: None,
        })
        .unwrap();
        assert_eq!(gw.len(), 1);
    }

    type Forms = std::sync::Arc<std::sync::Mutex<Vec<BTreeMap<String, String>>>>;

    /// A server that answers every request with `status` and `body`, and records the forms.
    async fn canned(status: u16, body: &'static str) -> (VpcClient, Forms) {
        canned_observed(status, body, None).await
    }

    /// [`canned`], with `observer` on the factory.
    async fn canned_observed(
        status: u16,
        body: &'static str,
        observer: Option<Arc<dyn CallObserver>>,
    ) -> (VpcClient, Forms) {
        let seen: Forms = Arc::default();
        let record = seen.clone();
        let url = serve(move |form| {
            record.lock().unwrap().push(form);
            (status, body)
        })
        .await;
        let config = fast_retries(&url, 3);
        let creds = Arc::new(crate::StaticCredentials::new(crate::Credentials::new(
            "AKID", "secret",
        )));
        let mut factory = VpcClientFactory::new(config).unwrap();
        if let Some(observer) = observer {
            factory = factory.with_observer(observer);
        }
        let client = factory.client("cn-hangzhou", creds).unwrap();
        (client, seen)
    }

    /// A loopback server that answers each request with the status and JSON body `answer`
    /// gives for its form; its base URL.
    pub(crate) async fn serve<F>(answer: F) -> String
    where
        F: Fn(BTreeMap<String, String>) -> (u16, &'static str) + Clone + Send + Sync + 'static,
    {
        let app = axum::Router::new().fallback(move |request: axum::body::Bytes| {
            let answer = answer.clone();
            async move {
                let (status, body) =
                    answer(url::form_urlencoded::parse(&request).into_owned().collect());
                (
                    axum::http::StatusCode::from_u16(status).unwrap(),
                    [("content-type", "application/json")],
                    body,
                )
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        format!("http://{addr}/")
    }

    /// Settings for [`serve`]'s `url`: `max_attempts` attempts, a millisecond apart.
    fn fast_retries(url: &str, max_attempts: u32) -> ClientConfig {
        ClientConfig {
            endpoint: Endpoint::from_url(url).unwrap(),
            retry: RetryPolicy {
                max_attempts,
                base_delay: Duration::from_millis(1),
                max_delay: Duration::from_millis(2),
            },
            ..ClientConfig::default()
        }
    }

    fn create_request() -> CreateVpnPbrRouteEntryRequest {
        CreateVpnPbrRouteEntryRequest {
            entry: EntryKey {
                vpn_gateway_id: "vpn-1".into(),
                route_source: "192.168.1.0/24".into(),
                route_dest: "10.0.0.0/24".into(),
                next_hop: "vco-1".into(),
            },
            weight: 100,
            publish_vpc: false,
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_passed_dry_run_is_ok_and_sent_once() {
        let (client, seen) = canned(
            400,
            r#"{"RequestId":"R-dry","Code":"DryRunOperation","Message":"Request validation has been passed with DryRun flag set."}"#,
        )
        .await;
        let passed = client
            .dry_run_create_vpn_pbr_route_entry(&create_request())
            .await
            .unwrap();
        assert_eq!(passed.action, "CreateVpnPbrRouteEntry");
        assert_eq!(passed.request_id.as_deref(), Some("R-dry"));
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 1, "never retried");
        assert_eq!(seen[0]["DryRun"], "true");
        assert_eq!(seen[0]["Action"], "CreateVpnPbrRouteEntry");
    }

    #[tokio::test]
    async fn a_refused_dry_run_is_the_usual_error() {
        let (client, _) = canned(
            400,
            r#"{"RequestId":"R-hop","Code":"InvalidNextHop.NotFound","Message":"next hop"}"#,
        )
        .await;
        let e = client.dry_run(&create_request()).await.unwrap_err();
        assert_eq!(e.code(), "InvalidNextHop.NotFound");
        assert!(!e.is_dry_run_ok());
    }

    #[tokio::test]
    async fn a_dry_run_answered_with_success_is_an_error() {
        let (client, _) = canned(
            200,
            r#"{"RequestId":"R-ok","RouteSource":"192.168.1.0/24","RouteDest":"10.0.0.0/24","NextHop":"vco-1","Weight":100}"#,
        )
        .await;
        let e = client.dry_run(&create_request()).await.unwrap_err();
        assert_eq!(e.code(), "MalformedResponse");
        assert!(e.to_string().contains("ignored DryRun"), "{e}");
    }

    fn rate_limited_factory(max_rate: f64, burst: f64) -> VpcClientFactory {
        VpcClientFactory::new(ClientConfig {
            rate_limit: RateLimitConfig {
                max_rate,
                min_rate: 1.0,
                burst,
            },
            ..ClientConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn each_account_key_has_one_limiter() {
        let factory = rate_limited_factory(10.0, 1.0);
        let a = factory.account_rate_limiter("tenant-a");
        assert!(Arc::ptr_eq(&a, &factory.account_rate_limiter("tenant-a")));
        assert!(!Arc::ptr_eq(&a, &factory.account_rate_limiter("tenant-b")));
        let default = factory.account_rate_limiter(DEFAULT_ACCOUNT);
        assert!(std::ptr::eq(default.as_ref(), factory.rate_limiter()));
        assert!(!Arc::ptr_eq(&a, &default));
        let creds: Arc<dyn CredentialsProvider> = Arc::new(crate::StaticCredentials::new(
            crate::Credentials::new("AKID", "secret"),
        ));
        let client = factory.client("cn-hangzhou", creds.clone()).unwrap();
        assert_eq!(client.account(), DEFAULT_ACCOUNT);
        assert!(Arc::ptr_eq(&client.inner.limiter, &default));
        let client = factory
            .client_for_account("tenant-a", "cn-hangzhou", creds)
            .unwrap();
        assert_eq!(client.account(), "tenant-a");
        assert!(Arc::ptr_eq(&client.inner.limiter, &a));
    }

    #[test]
    fn each_account_key_has_its_own_rate() {
        let factory = rate_limited_factory(10.0, 1.0);
        factory.set_account_rate("tenant-a", Some(2.0));
        factory.set_account_rate("tenant-b", Some(50.0));
        let creds: Arc<dyn CredentialsProvider> = Arc::new(crate::StaticCredentials::new(
            crate::Credentials::new("AKID", "secret"),
        ));
        let max_rate = |account: &str| {
            let client = factory
                .client_for_account(account, "cn-hangzhou", creds.clone())
                .unwrap();
            (
                client.inner.limiter.max_rate(),
                client.inner.limiter.current_rate(),
            )
        };
        assert_eq!(max_rate("tenant-a"), (2.0, 2.0));
        assert_eq!(max_rate("tenant-b"), (50.0, 50.0));
        assert_eq!(max_rate("tenant-c"), (10.0, 10.0), "the factory's rate");
        assert_eq!(max_rate(DEFAULT_ACCOUNT), (10.0, 10.0));
        // A changed rate reaches the clients made before; `None` goes back to the factory's.
        let a = factory
            .client_for_account("tenant-a", "cn-hangzhou", creds.clone())
            .unwrap();
        factory.set_account_rate("tenant-a", Some(4.0));
        assert_eq!(a.inner.limiter.max_rate(), 4.0);
        factory.set_account_rate("tenant-a", None);
        assert_eq!(a.inner.limiter.max_rate(), 10.0);
        assert_eq!(max_rate("tenant-b"), (50.0, 50.0));
    }

    #[tokio::test(start_paused = true)]
    async fn accounts_do_not_share_tokens_and_one_throttled_does_not_slow_another() {
        use tokio::time::Instant;
        let factory = rate_limited_factory(10.0, 1.0);
        let (a, b) = (
            factory.account_rate_limiter("tenant-a"),
            factory.account_rate_limiter("tenant-b"),
        );
        // A spends its burst and is throttled twice: 2.5 calls/s.
        a.acquire(Priority::Mutation).await;
        a.on_throttled();
        a.on_throttled();
        assert!((a.current_rate() - 2.5).abs() < 1e-9);
        assert!((b.current_rate() - 10.0).abs() < 1e-9);
        // B still has its own burst, and then its own full rate: 11 calls in 1 s.
        let start = Instant::now();
        for _ in 0..11 {
            b.acquire(Priority::Background).await;
        }
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        // While B was served, A refilled at its own (halved) rate only.
        let start = Instant::now();
        a.acquire(Priority::Mutation).await;
        a.acquire(Priority::Mutation).await;
        assert_eq!(
            start.elapsed(),
            Duration::from_millis(400),
            "one token at hand, one at 2.5/s"
        );
        // And the default account is a third, untouched bucket.
        let start = Instant::now();
        factory.rate_limiter().acquire(Priority::Progress).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test]
    async fn throttling_answers_slow_only_the_account_they_came_for() {
        // One server: the key of account A is throttled, the key of B is served.
        let url = serve(|form| {
            if form.get("AccessKeyId").map(String::as_str) == Some("AK-A") {
                (
                    400,
                    r#"{"RequestId":"R-t","Code":"Throttling.User","Message":"slow down"}"#,
                )
            } else {
                (
                    200,
                    r#"{"RequestId":"R-ok","VpnGatewayId":"vpn-1","Status":"active"}"#,
                )
            }
        })
        .await;
        let waits: Arc<std::sync::Mutex<Vec<(String, Duration)>>> = Arc::default();
        let sink = waits.clone();
        let factory = VpcClientFactory::new(fast_retries(&url, 2))
            .unwrap()
            .with_observer(Arc::new(move |c: &CallRecord<'_>| {
                sink.lock()
                    .unwrap()
                    .push((c.account.to_owned(), c.rate_limit_wait));
            }));
        let client = |account: &str, key: &str| {
            let creds = Arc::new(crate::StaticCredentials::new(crate::Credentials::new(
                key, "secret",
            )));
            factory
                .client_for_account(account, "cn-hangzhou", creds)
                .unwrap()
        };
        let (a, b) = (client("tenant-a", "AK-A"), client("tenant-b", "AK-B"));
        let gateway = DescribeVpnGatewayRequest {
            vpn_gateway_id: "vpn-1".into(),
            include_reservation_data: None,
        };
        for _ in 0..2 {
            let e = a.describe_vpn_gateway(&gateway).await.unwrap_err();
            assert_eq!(e.code(), "Throttling.User");
        }
        let max = ClientConfig::default().rate_limit.max_rate;
        assert!(factory.account_rate_limiter("tenant-a").current_rate() < max / 2.0);
        for _ in 0..20 {
            b.describe_vpn_gateway(&gateway).await.unwrap();
        }
        assert_eq!(factory.account_rate_limiter("tenant-b").current_rate(), max);
        assert_eq!(factory.rate_limiter().current_rate(), max);
        let waits = waits.lock().unwrap();
        assert_eq!(waits.iter().filter(|(acc, _)| acc == "tenant-a").count(), 4);
        let b_waits: Vec<_> = waits.iter().filter(|(acc, _)| acc == "tenant-b").collect();
        assert_eq!(b_waits.len(), 20);
        assert!(
            b_waits.iter().all(|(_, w)| *w < Duration::from_millis(50)),
            "B waited behind A's throttling: {b_waits:?}"
        );
    }

    #[tokio::test]
    async fn every_attempt_keeps_the_class_of_its_call() {
        use crate::rate_limit::{Priority, with_priority};
        type Attempts = std::sync::Mutex<Vec<(&'static str, u32, Priority)>>;
        let records: Arc<Attempts> = Arc::default();
        let sink = records.clone();
        let observer: Arc<dyn CallObserver> = Arc::new(move |c: &CallRecord<'_>| {
            sink.lock().unwrap().push((c.action, c.attempt, c.priority));
        });
        let (client, seen) = canned_observed(
            503,
            r#"{"RequestId":"R-busy","Code":"ServiceUnavailable","Message":"try again"}"#,
            Some(observer),
        )
        .await;
        let gateway = DescribeVpnGatewayRequest {
            vpn_gateway_id: "vpn-1".into(),
            include_reservation_data: None,
        };
        client.describe_vpn_gateway(&gateway).await.unwrap_err();
        with_priority(Priority::Background, async {
            client.describe_vpn_gateway(&gateway).await.unwrap_err();
            // A scope of reads nobody waits for does not lower a mutation.
            client
                .create_vpn_pbr_route_entry(&create_request())
                .await
                .unwrap_err();
        })
        .await;
        assert_eq!(seen.lock().unwrap().len(), 9, "three attempts each");
        let expected: Vec<_> = [
            ("DescribeVpnGateway", Priority::Progress),
            ("DescribeVpnGateway", Priority::Background),
            ("CreateVpnPbrRouteEntry", Priority::Mutation),
        ]
        .into_iter()
        .flat_map(|(action, p)| (1..=3).map(move |attempt| (action, attempt, p)))
        .collect();
        assert_eq!(*records.lock().unwrap(), expected);
    }
}
