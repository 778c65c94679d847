//! Benchmarks: loading a plugin (compiling, or from the compile cache), instantiating and
//! calling a trivial plugin, what each egress layer costs (over a stub answering at once, no
//! network), and one request through the full egress pipeline beside the same request made by a
//! plain hyper-util client.

use std::sync::Arc;

use apiary_host::{
    Clock, Egress, EgressContext, EgressParts, EgressPolicy, Grant, Manifest, MemorySink, RunRequest, Runtime,
    RuntimeConfig, SystemClock, TenantId, resolve,
};
use apiary_tests::{TestServer, components, respond, test_guest, test_runtime_config};
use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

fn load_plugin(c: &mut Criterion) {
    let plugin_dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let uncached = Runtime::new(RuntimeConfig {
        cache_dir: None,
        ..test_runtime_config()
    })
    .unwrap();
    let cached = Runtime::new(RuntimeConfig {
        cache_dir: Some(cache.path().to_path_buf()),
        ..test_runtime_config()
    })
    .unwrap();
    let manifest = || apiary_tests::manifest(plugin_dir.path(), components::GITHUB_PLUGIN, "");
    cached.load(manifest(), Grant::new("bench")).unwrap();
    let mut group = c.benchmark_group("load the github plugin");
    group.sample_size(10);
    group.bench_function("compile", |b| {
        b.iter(|| uncached.load(manifest(), Grant::new("bench")).unwrap())
    });
    group.bench_function("from the compile cache", |b| {
        b.iter(|| cached.load(manifest(), Grant::new("bench")).unwrap())
    });
    group.finish();
}

fn instantiate_and_call(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let runtime = Runtime::new(test_runtime_config()).unwrap();
    let plugin = test_guest(&runtime, "");
    c.bench_function("plugin/instantiate+run noop", |b| {
        b.to_async(&rt).iter(|| async {
            let request = RunRequest::new("noop", Arc::new(MemorySink::default()));
            runtime.run(&plugin, request).await.unwrap()
        })
    });
}

fn one_request(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(TestServer::start(|_, _| {
        respond(200, &[("content-type", "application/json")], r#"{"ok":true}"#)
    }));
    let url = format!("{}/bench", server.url());
    let manifest = Manifest::parse(
        "name = \"bench\"\nversion = \"1\"\ncomponent = \"x.wasm\"\n[permissions]\nhosts = [\"http://127.0.0.1:*\"]\n",
        std::path::Path::new("bench.toml"),
    )
    .unwrap();
    let grant = Grant::local(&manifest).network("127.0.0.0/8".parse().unwrap());
    let resolved = resolve(&manifest, &grant).unwrap();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let policy = Arc::new(EgressPolicy::new(&manifest, resolved, &clock));
    let egress = Egress::new(EgressParts::default());
    let mut group = c.benchmark_group("one GET to a loopback server");
    group.bench_function("apiary egress pipeline", |b| {
        b.to_async(&rt).iter(|| async {
            let mut request = http::Request::get(url.as_str()).body(Bytes::new()).unwrap();
            EgressContext::new(TenantId::default(), policy.clone()).attach_to(&mut request);
            egress.send(request).await.unwrap()
        })
    });
    let plain: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    group.bench_function("plain hyper-util client", |b| {
        b.to_async(&rt).iter(|| async {
            let request = http::Request::get(url.as_str()).body(Full::new(Bytes::new())).unwrap();
            let response = plain.request(request).await.unwrap();
            response.into_body().collect().await.unwrap().to_bytes()
        })
    });
    group.finish();
}

/// The pipeline's layers stacked one more at a time over a stub that answers at once: the
/// difference between two rows is what the added layer costs per request.
fn each_layer(c: &mut Criterion) {
    use apiary_host::{
        AllowlistLayer, EgressService, RateLimitLayer, RateLimiter, RetryLayer, SecretLayer, TimeoutLayer, stage,
    };
    use tower::{ServiceBuilder, ServiceExt};

    let rt = tokio::runtime::Runtime::new().unwrap();
    let manifest = Manifest::parse(
        "name = \"bench\"\nversion = \"1\"\ncomponent = \"x.wasm\"\n[permissions]\nhosts = [\"https://api.example.com\"]\n\
         [[ratelimit]]\nbucket = \"api.example.com\"\nrate = 1000000000\nper = \"1s\"\nburst = 1000000000\n",
        std::path::Path::new("bench.toml"),
    )
    .unwrap();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let resolved = resolve(&manifest, &Grant::local(&manifest)).unwrap();
    let policy = Arc::new(EgressPolicy::new(&manifest, resolved, &clock));
    let stub = || {
        EgressService::new(tower::service_fn(|_: apiary_host::EgressRequest| {
            std::future::ready(Ok::<_, apiary_host::EgressError>(http::Response::new(
                Bytes::from_static(b"{}"),
            )))
        }))
    };
    let rng = Arc::new(std::sync::Mutex::new(fastrand::Rng::with_seed(1)));
    let stacks: Vec<(&str, EgressService)> = vec![
        ("stub alone", stub()),
        (
            "+ timeout",
            ServiceBuilder::new()
                .layer(stage(TimeoutLayer::new(clock.clone())))
                .service(stub()),
        ),
        (
            "+ rate limit",
            ServiceBuilder::new()
                .layer(stage(RateLimitLayer::new(Arc::new(RateLimiter::new()), clock.clone())))
                .layer(stage(TimeoutLayer::new(clock.clone())))
                .service(stub()),
        ),
        (
            "+ retry",
            ServiceBuilder::new()
                .layer(stage(RetryLayer::new(clock.clone(), rng.clone())))
                .layer(stage(RateLimitLayer::new(Arc::new(RateLimiter::new()), clock.clone())))
                .layer(stage(TimeoutLayer::new(clock.clone())))
                .service(stub()),
        ),
        (
            "+ secrets (none held)",
            ServiceBuilder::new()
                .layer(stage(SecretLayer))
                .layer(stage(RetryLayer::new(clock.clone(), rng.clone())))
                .layer(stage(RateLimitLayer::new(Arc::new(RateLimiter::new()), clock.clone())))
                .layer(stage(TimeoutLayer::new(clock.clone())))
                .service(stub()),
        ),
        (
            "+ allowlist (the whole pipeline)",
            ServiceBuilder::new()
                .layer(stage(AllowlistLayer))
                .layer(stage(SecretLayer))
                .layer(stage(RetryLayer::new(clock.clone(), rng.clone())))
                .layer(stage(RateLimitLayer::new(Arc::new(RateLimiter::new()), clock.clone())))
                .layer(stage(TimeoutLayer::new(clock.clone())))
                .service(stub()),
        ),
    ];
    let mut group = c.benchmark_group("egress layers over a stub");
    for (name, service) in stacks {
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                let mut request = http::Request::get("https://api.example.com/v1/items?page=2")
                    .body(Bytes::new())
                    .unwrap();
                EgressContext::new(TenantId::default(), policy.clone()).attach_to(&mut request);
                service.clone().oneshot(request).await.unwrap()
            })
        });
    }
    group.finish();
}

/// Python and JavaScript plugins: loading one from the compile cache, and instantiating it and
/// calling `describe` (the pooling allocator and copy-on-write memory images make this cheap
/// even for a 15 MB interpreter), beside the Rust GitHub plugin.
fn polyglot(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let work = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(RuntimeConfig {
        cache_dir: Some(cache.path().to_path_buf()),
        ..test_runtime_config()
    })
    .unwrap();
    let rust_dir = tempfile::tempdir().unwrap();
    let mut plugins = vec![(
        "rust",
        apiary_tests::manifest(rust_dir.path(), components::GITHUB_PLUGIN, ""),
    )];
    plugins.push(("python", apiary_tests::build_example_plugin("github-py", work.path())));
    plugins.push(("js", apiary_tests::build_example_plugin("github-js", work.path())));
    let mut load = c.benchmark_group("load from the compile cache");
    load.sample_size(10);
    for (lang, manifest) in &plugins {
        runtime.load(manifest.clone(), Grant::new("bench")).unwrap();
        load.bench_function(*lang, |b| {
            b.iter(|| runtime.load(manifest.clone(), Grant::new("bench")).unwrap())
        });
    }
    load.finish();
    let mut group = c.benchmark_group("instantiate + describe");
    for (lang, manifest) in &plugins {
        let plugin = runtime.load(manifest.clone(), Grant::new("bench")).unwrap();
        group.bench_function(*lang, |b| {
            b.to_async(&rt)
                .iter(|| async { runtime.describe(&plugin).await.unwrap() })
        });
    }
    group.finish();
}

/// One GET in a whole run: sent by a stock guest through `wasi:http`, and by the test guest
/// through `apiary:plugin/http`; the same pipeline behind both.
fn wasi_http_vs_apiary_http(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(TestServer::start(|_, _| {
        respond(200, &[("content-type", "application/json")], r#"{"ok":true}"#)
    }));
    let runtime = Runtime::new(test_runtime_config()).unwrap();
    let body = format!("[permissions]\nhosts = [\"{}\"]\n", server.url());
    let apiary = test_guest(&runtime, &body);
    let stock = apiary_tests::load_exactly(&runtime, components::STOCK_GUEST, &body, |m| {
        let mut grant = Grant::local(m);
        grant.networks.extend(apiary_tests::loopback());
        grant
    });
    let input = serde_json::json!({ "url": server.url() }).to_string();
    let mut group = c.benchmark_group("one GET in a run");
    for (name, plugin, operation) in [
        ("wasi:http (wstd)", &stock, "get"),
        ("apiary:plugin/http", &apiary, "fetch"),
    ] {
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                let request = RunRequest::new(operation, Arc::new(MemorySink::default())).input(input.clone());
                runtime.run(plugin, request).await.unwrap()
            })
        });
    }
    group.finish();
}

/// The pure decisions each attempt takes: well under a microsecond each.
fn decisions(c: &mut Criterion) {
    use apiary_host::{
        AttemptOutcome, BreakerConfig, CircuitBreaker, PauseScope, Quota, RateLimiter, RetryPolicy, learned_pause,
    };
    use std::time::{Duration, SystemTime};

    let mut group = c.benchmark_group("decisions");
    let policy = RetryPolicy::default();
    let mut headers = http::HeaderMap::new();
    headers.insert("retry-after", "7".parse().unwrap());
    headers.insert("x-ratelimit-remaining", "0".parse().unwrap());
    headers.insert("x-ratelimit-reset", "1700000030".parse().unwrap());
    headers.insert("ratelimit", "\"default\";r=0;t=2".parse().unwrap());
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let mut rng = fastrand::Rng::with_seed(1);
    group.bench_function("retry: a 503 with Retry-After", |b| {
        let outcome = AttemptOutcome::Response {
            status: http::StatusCode::SERVICE_UNAVAILABLE,
            headers: &headers,
        };
        b.iter(|| policy.decide(1, &outcome, true, now, &mut rng))
    });
    group.bench_function("learned limit from a response's headers", |b| {
        b.iter(|| learned_pause(http::StatusCode::OK, &headers, now))
    });
    let limiter = RateLimiter::new();
    let quota = Quota::new(
        std::num::NonZeroU32::new(1_000_000).unwrap(),
        Duration::from_secs(1),
        std::num::NonZeroU32::new(1_000_000).unwrap(),
    );
    let key = apiary_host::BucketKey {
        scope: PauseScope::Anonymous {
            tenant: TenantId::default(),
            plugin: "p".into(),
        },
        bucket: "api.example.com".into(),
    };
    let mut t = Duration::ZERO;
    group.bench_function("rate limit: book a slot", |b| {
        b.iter(|| {
            t += Duration::from_micros(1);
            limiter.reserve(&key, &quota, t, Duration::from_secs(60))
        })
    });
    let config = BreakerConfig::default();
    let mut breaker = CircuitBreaker::default();
    group.bench_function("circuit breaker: admit and record", |b| {
        b.iter(|| {
            breaker.admit(t, &config);
            breaker.record(true, t, &config)
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    decisions,
    load_plugin,
    instantiate_and_call,
    each_layer,
    one_request,
    wasi_http_vs_apiary_http,
    polyglot
);
criterion_main!(benches);
