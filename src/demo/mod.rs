//! `ficus demo`: a legacy app, a new "orders" service, a "products" service under test and ficus
//! in front of them, all on loopback.
//!
//! The apps are tiny hyper servers on port 0, run by a tokio runtime of their own (Pingora builds
//! its own runtimes for ficus). Each answers JSON naming itself and sets `x-served-by`, so every
//! curl line the demo prints shows which side answered. The route table is ordinary TOML with the
//! real ports filled in, loaded by [`crate::config::load_str`]; its `data_dir` (the shadow
//! samples' store and the webhook outbox) is a directory of the demo's own under the system temp
//! dir, removed on exit. The orders the new service creates reach legacy as signed webhooks, which
//! legacy verifies and logs ([`receiver`]).

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;

use anyhow::Context;

mod apps;
mod receiver;
mod steps;
mod tokens;
use apps::serve;
use receiver::Receiver;
pub use receiver::{RECEIVED_PATH, SECRET_ENV, SYNC_PATH};
pub use steps::{DemoStep, ORDER_BODY};
pub use tokens::SUBJECT as TOKEN_SUBJECT;

pub const LEGACY: &str = "legacy";
pub const ORDERS: &str = "orders";
/// The service under test: it gets a copy of [`SHADOWED_ROUTE`]'s requests, never a client.
pub const PRODUCTS: &str = "products";
/// The route whose requests legacy answers and [`PRODUCTS`] shadows.
pub const SHADOWED_ROUTE: &str = "products-read";
/// The route whose orders created by [`ORDERS`] are sent to legacy as webhooks.
pub const WEBHOOK_ROUTE: &str = "orders-create";
/// The route whose requests need a token (`jwt`) and reach [`ORDERS`] at another path (`rewrite`).
pub const JWT_ROUTE: &str = "account";
/// The response header every app sets.
pub const SERVED_BY: &str = "x-served-by";

/// The demo route table; [`start`] fills in the `{…}` placeholders.
const TABLE: &str = r#"
[proxy]
listen = "{listen}"
admin = "{admin}"                 # the admin API and the migration dashboard
default = "legacy"                # the catch-all: whatever no route claims stays on legacy
data_dir = {data_dir}
threads = 2

[client_version]                  # read from x-client-version, else from the User-Agent
user_agent = '^DemoApp/(?<version>[0-9.]+)'

[upstreams.legacy]
url = "http://127.0.0.1:{legacy}"

[upstreams.orders]
url = "http://127.0.0.1:{orders}"

[upstreams.products]              # the new products service, under test
url = "http://127.0.0.1:{products}"

[upstreams.reports]               # nothing listens here: the reports service is "down"
url = "http://127.0.0.1:{closed}"
connect_timeout = "500ms"

[[routes]]                        # version routing: new clients read orders from the new service
name = "orders-read"
path = "/api/orders/*"
methods = ["GET", "HEAD"]
client_version = ">=2.0.0"
upstream = "orders"
fallback = "legacy"

[[routes]]                        # a sticky 50/50 canary for order creation
name = "orders-create"
path = "/api/orders"
methods = ["POST"]
split = { orders = 50, legacy = 50 }
sticky = "header:x-user-id"

  [routes.webhook]                # legacy hears about the orders the new service creates
  url = "http://127.0.0.1:{legacy}/sync/orders"
  event = "order.created"
  secret_env = "{secret_env}"  # a random whsec_ secret the demo makes
  key = "/id"                     # one order's events are delivered in order
  retries = ["1s", "10s", "1m"]   # short, for a demo
                                  # `from` is every upstream but legacy: its own orders send nothing

[[routes]]                        # opt-in beta by query parameter
name = "catalog-beta"
path = "/api/catalog/*"
query = { beta = "1" }
upstream = "orders"

[[routes]]                        # legacy answers; a copy goes to the products service under test
name = "products-read"
path = "/api/products/{id}"
upstream = "legacy"

  [routes.shadow]                 # compares the two answers: GET /api/shadow on the admin port
  upstream = "products"
  percent = 100
  ignore_headers = ["x-served-by"]  # each app names itself: a known, expected difference
  ignore = ["/served_by"]
  learn_noise = 100               # each request also goes to legacy twice: what differs between
                                  # its own two answers (answer_no) is noise, not a mismatch

[plugins.account-auth]            # only requests with a valid token reach the account route
use = "jwt"
jwks = {jwks}  # the demo's own key set; it signs the tokens in the curl lines
issuer = "{issuer}"
required_claims = ["sub"]
claims_to_headers = { sub = "x-user-id" }  # a client's own x-user-id is removed first

[plugins.account-v2]              # the new service has its own URL layout
use = "rewrite"
upstreams = ["orders"]            # a fallback to legacy keeps the path the client sent
strip_prefix = "/api"             # /api/account/profile -> /account/profile
add_prefix = "/v2"                # -> /v2/account/profile

[[routes]]                        # token-checked, and mounted at another base path
name = "account"
path = "/api/account/*"
upstream = "orders"
fallback = "legacy"
plugins = ["account-auth", "account-v2"]

[[routes]]                        # the new service answers 503 here: replayed to legacy
name = "invoices"
path = "/api/invoices/{id}"
upstream = "orders"
fallback = "legacy"

[[routes]]                        # the upstream is down: replayed to legacy
name = "reports"
path = "/api/reports/*"
upstream = "reports"
fallback = "legacy"
"#;

/// A running demo; dropping it stops the apps and ficus.
pub struct Demo {
    pub proxy_url: String,
    /// The admin API; its `/` is the migration dashboard.
    pub admin_url: String,
    pub legacy_url: String,
    pub orders_url: String,
    pub products_url: String,
    /// The route table, as loaded, for `ficus explain --config`.
    pub table_file: PathBuf,
    pub steps: Vec<DemoStep>,
    /// A token for the [`JWT_ROUTE`] that expired an hour before the demo started.
    pub expired_token: String,
    _server: crate::server::Running,
    apps: Option<tokio::runtime::Runtime>,
    /// Dropped after the server, which keeps its store there.
    _data_dir: DataDir,
}

impl Drop for Demo {
    fn drop(&mut self) {
        // Does not block, so a test may drop the demo on its own runtime.
        if let Some(apps) = self.apps.take() {
            apps.shutdown_background();
        }
    }
}

impl Demo {
    /// What runs where, then the curl lines, each after a comment saying what it shows.
    pub fn banner(&self) -> String {
        let mut out = format!(
            "ficus demo\n  legacy app        {}   the monolith being strangled; takes webhooks at \
             {SYNC_PATH}\n  orders service    {}   the new service\n  products service  {}   \
             under test: shadowed, never answers a client\n  \
             reports service (down on purpose: its route falls back to legacy)\n  \
             ficus             {}   in front of them, route table {}\n\n\
             Try these (x-served-by says who answered):\n\n",
            self.legacy_url,
            self.orders_url,
            self.products_url,
            self.proxy_url,
            self.table_file.display()
        );
        for s in &self.steps {
            let answer = match s.expect_status {
                200 | 201 => s.expect_served_by.to_string(),
                status => format!("{status} from {}", s.expect_served_by),
            };
            out.push_str(&format!("# {} -> {answer}\n{}\n\n", s.what, s.curl));
        }
        // The binary as the user can type it: relative when under the current directory.
        let exe = std::env::current_exe().ok().and_then(|exe| {
            let relative = exe.strip_prefix(std::env::current_dir().ok()?).ok()?;
            Some(relative.display().to_string())
        });
        let exe = exe.as_deref().unwrap_or("ficus");
        let table = self.table_file.display();
        out + &format!(
            "What legacy heard: each order the new service creates is stored as an order.created \
             event before the client gets its 201, then delivered to legacy's {SYNC_PATH}, signed \
             (Standard Webhooks); legacy checks the signature and logs one line per delivery. The \
             outbox's counts:\n  {}\n\nThe deliveries legacy verified:\n  {}\n\n\
             What the shadow found: 1 mismatch per products request, at /price (legacy sends a \
             string, the new service a number); answer_no is learned noise:\n  {}\n\n\
             The mismatches it kept, with both answers and the diff:\n  {}\n\n\
             Why a request went where it did:\n  {exe} explain --config {table} GET /api/orders/42 \
             -H 'x-client-version: 2.1'\n\nWhat the account route's plugins do with a token \
             (jwt says why it is refused):\n  {exe} explain --config {table} GET \
             /api/account/profile -H 'authorization: Bearer {}'\n\nThe migration dashboard (routes, shadow, webhooks): \
             {}/  (metrics: {}/metrics, routes: {}/api/routes)\n\nCtrl-C stops the demo.\n",
            self.webhooks_curl(),
            self.received_curl(),
            self.shadow_report_curl(),
            self.shadow_samples_curl(),
            self.expired_token,
            self.admin_url,
            self.admin_url,
            self.admin_url
        )
    }

    /// The curl line for `GET /api/webhooks`.
    pub fn webhooks_curl(&self) -> String {
        format!("curl -s {}/api/webhooks", self.admin_url)
    }

    /// The curl line for what legacy's webhook endpoint accepted.
    pub fn received_curl(&self) -> String {
        format!("curl -s {}{RECEIVED_PATH}", self.legacy_url)
    }

    /// The curl line for `GET /api/shadow`.
    pub fn shadow_report_curl(&self) -> String {
        format!("curl -s {}/api/shadow", self.admin_url)
    }

    /// The curl line for the shadowed route's samples.
    pub fn shadow_samples_curl(&self) -> String {
        format!(
            "curl -s '{}/api/shadow/samples?route={SHADOWED_ROUTE}'",
            self.admin_url
        )
    }
}

/// The demo's `data_dir`: a new directory under the system temp dir, removed on drop, so runs
/// (and tests running demos side by side) never share a store. Written here rather than with
/// `tempfile`, which ficus has only as a dev-dependency.
struct DataDir(PathBuf);

impl DataDir {
    fn new() -> anyhow::Result<DataDir> {
        let base = std::env::temp_dir();
        for n in 0..1000 {
            let dir = base.join(format!("ficus-demo-{}-{n}", std::process::id()));
            match std::fs::create_dir(&dir) {
                Ok(()) => return Ok(DataDir(dir)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot create {}", dir.display()))
                }
            }
        }
        anyhow::bail!("cannot create a demo directory in {}", base.display())
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the demo until Ctrl-C, then shuts it down.
pub fn run(listen: SocketAddr) -> anyhow::Result<()> {
    let demo = start(listen)?;
    let apps = demo
        .apps
        .as_ref()
        .context("the demo apps are not running")?;
    let ctrl_c = apps.spawn(tokio::signal::ctrl_c());
    print!("{}", demo.banner());
    std::io::Write::flush(&mut std::io::stdout())?;
    apps.block_on(ctrl_c)?.context("cannot wait for Ctrl-C")?;
    println!("stopping the demo");
    drop(demo);
    Ok(())
}

/// Starts the apps and ficus on `listen`, and returns once ficus accepts connections.
pub fn start(listen: SocketAddr) -> anyhow::Result<Demo> {
    // First: it may set the secret's environment variable, which is done before threads start.
    let secret = receiver::secret()?;
    let apps = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("ficus-demo-apps")
        .enable_all()
        .build()
        .context("cannot start the demo apps' runtime")?;
    let legacy = serve(&apps, LEGACY, Some(Receiver::new(secret)?))?;
    let orders = serve(&apps, ORDERS, None)?;
    let products = serve(&apps, PRODUCTS, None)?;
    // A port that was free a moment ago and that nothing listens on: the "down" reports service.
    let closed = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let admin = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let data_dir = DataDir::new()?;
    let data_dir_toml = toml::Value::String(data_dir.0.display().to_string()).to_string();
    let jwks = data_dir.0.join("jwks.json");
    let tokens = tokens::make(&jwks)?;
    let jwks_toml = toml::Value::String(jwks.display().to_string()).to_string();
    let text = TABLE
        .replace("{listen}", &listen.to_string())
        .replace("{admin}", &admin.to_string())
        .replace("{data_dir}", &data_dir_toml)
        .replace("{secret_env}", SECRET_ENV)
        .replace("{jwks}", &jwks_toml)
        .replace("{issuer}", tokens::ISSUER)
        .replace("{legacy}", &legacy.port().to_string())
        .replace("{orders}", &orders.port().to_string())
        .replace("{products}", &products.port().to_string())
        .replace("{closed}", &closed.to_string());
    let table = crate::config::load_str(&text, "demo.toml")
        .map_err(|e| anyhow::anyhow!("the demo route table is invalid:\n{e}"))?;
    let table_file = data_dir.0.join("routes.toml");
    std::fs::write(&table_file, &text)
        .with_context(|| format!("cannot write {}", table_file.display()))?;
    let proxy_url = format!("http://{listen}");
    let steps = steps::steps(&table, &proxy_url, &tokens)?;
    let server = crate::server::spawn(table).map_err(|e| {
        anyhow::anyhow!("{e:#} (choose another address with `ficus demo --listen 127.0.0.1:PORT`)")
    })?;
    Ok(Demo {
        proxy_url,
        admin_url: format!("http://{admin}"),
        legacy_url: format!("http://{legacy}"),
        orders_url: format!("http://{orders}"),
        products_url: format!("http://{products}"),
        table_file,
        steps,
        expired_token: tokens.expired,
        _server: server,
        apps: Some(apps),
        _data_dir: data_dir,
    })
}
