#!/usr/bin/env python3
"""Consistency checks between the deployment files, run by ci/check-deploy.

Each subcommand checks one thing, prints what it compared, and exits 1 with the reasons when
the files disagree:

  env        .env.example <-> docker-compose.yml <-> the variables the Rust sources read
  ports      the Dockerfile's EXPOSE <-> compose, nginx.conf, the Helm chart
  nginx      deploy/nginx.conf keeps the production shape (an upstream with a zone, a `resolve`
             server, keep-alive connections closed before sessiond's drain ends, HTTP/1.1
             without "Connection: close") and compose runs an nginx that knows `resolve`;
             with OUT and the local nginx's version, writes the file for `nginx -t` there
  build      the Dockerfile's cargo build <-> the release build .ci/run runs and tests
  dockerfile runtime conventions: non-root numeric USER, exec-form ENTRYPOINT, HEALTHCHECK
  helm-env   every SESSIOND_* the rendered chart sets is a real setting, and every setting
             can be set through the chart
  version    Chart.yaml appVersion <-> Cargo.toml version
  skips      every checkov check skipped in ci/checkov.yaml is explained in the chart README
  invalid    a values file under ci/helm-invalid-values failed with the error it expects
  docs       the helm install/upgrade commands in the docs render (as helm template; an
             upgrade's --reuse-values is dropped), the Secrets they use are created there, the
             compose services they name exist
  monitoring the chart's ServiceMonitor and PrometheusRule: off by default, rendered by some
             value set, valid against ci/schemas/*.json, the ServiceMonitor selects the
             release's Service and port; writes the other manifests (for kubernetes-validate)
             and each PrometheusRule's spec (for promtool) into an output directory
  rules-sync deploy/prometheus/sessiond-alerts.yaml = the chart's PrometheusRule rendered with
             job="sessiond" (--write regenerates the file)
  dashboard  deploy/grafana/sessiond.json: the expected panels, layout, datasource variable,
             every exported metric shown; writes its queries as recording rules for promtool
  metric-names  the metric list below = what src/metrics.rs registers; the alert rules and
             the dashboard query only those (and `up`)
  doc-configs   writes the Prometheus configurations shown in Markdown files (```yaml blocks
             with scrape_configs) into a directory, for `promtool check config`; with
             --without-kubernetes-sd it checks kubernetes_sd_configs itself and replaces them
             by a static target (for a promtool built without Kubernetes discovery)

Needs PyYAML (present in the check virtualenv, which checkov depends on).
"""

from __future__ import annotations

import json
import math
import re
import shlex
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
# The one release build: what CI builds and tests, and what the image ships.
RELEASE_BUILD = "cargo build --release --locked"
# Names Kubernetes service links inject (SESSIOND_PORT, SESSIOND_SERVICE_HOST, ...): the
# sources mention them only to test that they are ignored.
SERVICE_LINK = re.compile(r"^SESSIOND_(PORT|SERVICE)(_|$)")
# Variables docker-compose.yml deliberately sets differently from the service's defaults.
COMPOSE_OVERRIDES = {
    "SESSIOND_LISTEN": "pinned to 0.0.0.0:<EXPOSE port>: nginx and the healthcheck rely on it",
    "SESSIOND_REDIS_URL": "defaults to the compose file's own Redis instead of the memory store",
}

# What GET /metrics exports (series names; histograms also have _bucket/_sum/_count) and the
# kind of each. `metric-names` checks this list against src/metrics.rs; the dashboard and the
# alert rules may only query these, and `up` (Prometheus' own per-target series).
EXPORTED_METRICS = {
    "sessiond_build_info": "info",
    "sessiond_rpc_calls_total": "counter",
    "sessiond_rpc_call_duration_seconds": "histogram",
    "sessiond_batch_size": "histogram",
    "sessiond_store_coalesced_batch_size": "histogram",
    "sessiond_store_operation_duration_seconds": "histogram",
    "sessiond_store_errors_total": "counter",
    "sessiond_store_up": "gauge",
    "sessiond_http_requests_in_flight": "gauge",
    "sessiond_http_connections_open": "gauge",
    "sessiond_http_connections_refused_total": "counter",
    "sessiond_unauthorized_requests_total": "counter",
    "sessiond_caller_requests_total": "counter",
    "sessiond_http_responses_total": "counter",
    "sessiond_endpoint_requests_total": "counter",
    "sessiond_endpoint_request_duration_seconds": "histogram",
}
PROMETHEUS_SERIES = {"up"}
ALERTS_FILE = "deploy/prometheus/sessiond-alerts.yaml"
DASHBOARD_FILE = "deploy/grafana/sessiond.json"
# The alerts docs/OPERATING.md documents and the chart can render.
ALERTS = ["SessiondDown", "SessiondStoreUnavailable", "SessiondHighErrorRatio",
          "SessiondHighClientErrorRatio", "SessiondHighLatencyP99"]
# Panel titles the dashboard must have (docs/OPERATING.md describes them).
DASHBOARD_PANELS = [
    "Calls / s", "Server error ratio", "p99 latency", "Store up", "Pods", "Versions",
    "Calls by method", "Calls by outcome", "Error ratio", "Call latency by method",
    "Batch size", "Batch requests / s", "Coalesced verify batch size",
    "Store up by pod", "Store operation latency (p99)", "Store operations / s", "Store errors / s",
    "Requests in flight", "Open connections", "Refused connections / s",
    "Unauthorized requests / s", "Requests by caller", "Responses by status",
    "Gateway and OAuth 2.0 requests / s", "Gateway and OAuth 2.0 latency (p99)",
]
MONITORING_API = "monitoring.coreos.com/v1"
# Custom resources the chart can render (all opt-in), which kubernetes-validate has no schema
# for: each is checked against ci/schemas/<kind in lower case>.json instead.
CUSTOM_RESOURCES = {
    "ServiceMonitor": MONITORING_API,
    "PrometheusRule": MONITORING_API,
    "HTTPRoute": "gateway.networking.k8s.io/v1",
}
CUSTOM_GROUPS = tuple(sorted({api.split("/")[0] + "/" for api in CUSTOM_RESOURCES.values()}))

problems: list[str] = []


def fail(msg: str) -> None:
    problems.append(msg)


def done(summary: str) -> None:
    if problems:
        for p in problems:
            print(f"  - {p}")
        sys.exit(1)
    print(summary)


# ---- readers -----------------------------------------------------------------------------


def env_example() -> dict[str, str | None]:
    """NAME -> default from .env.example; None for '# NAME=' (unset by default)."""
    out: dict[str, str | None] = {}
    for n, line in enumerate((ROOT / ".env.example").read_text().splitlines(), 1):
        if m := re.fullmatch(r"([A-Z][A-Z0-9_]*)=(.*)", line):
            name, value = m.groups()
            if value == "":
                fail(f".env.example:{n}: {name}= has an empty value; write '# {name}=' for unset")
            out[name] = value
        elif m := re.fullmatch(r"#\s?([A-Z][A-Z0-9_]*)=\s*", line):
            out[m.group(1)] = None
    return out


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def compose_env(doc: dict) -> dict[str, object]:
    env = doc["services"]["sessiond"].get("environment", {})
    if isinstance(env, list):
        env = dict(e.split("=", 1) if "=" in e else (e, None) for e in env)
    return env


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines, cur = [], ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        s = raw.strip()
        if not cur and (not s or s.startswith("#")):
            continue
        if cur and s.startswith("#"):
            continue
        if s.endswith("\\"):
            cur += s[:-1] + " "
            continue
        cur += s
        instr, _, args = cur.partition(" ")
        lines.append((instr.upper(), args.strip()))
        cur = ""
    return lines


def exposed_ports() -> list[int]:
    ports = []
    for instr, args in dockerfile():
        if instr == "EXPOSE":
            ports += [int(p.split("/")[0]) for p in args.split()]
    return ports


def src_variables() -> set[str]:
    """SESSIOND_* names the sources mention, less build-time ones (env!/option_env!, set by
    build.rs or the build) and Kubernetes service-link names."""
    from collections import Counter

    every, build_time = Counter(), Counter()
    for f in (ROOT / "src").rglob("*.rs"):
        text = f.read_text()
        every.update(re.findall(r"\bSESSIOND_[A-Z0-9_]*[A-Z0-9]\b", text))
        build_time.update(re.findall(r"\b(?:option_)?env!\(\s*\"(SESSIOND_[A-Z0-9_]+)\"", text))
    # Every setting's name is in config::KEYS (the variable: SESSIOND_ and the key upper-cased),
    # whether or not its name is spelled out elsewhere yet.
    config = ROOT / "src/config/mod.rs"
    if config.exists():
        m = re.search(r"pub const KEYS: &\[&str\] = &\[(.*?)\];", config.read_text(), re.S)
        if not m:
            fail("src/config/mod.rs: no `pub const KEYS: &[&str] = &[...]` to read the settings from")
        else:
            every.update("SESSIOND_" + k.upper() for k in re.findall(r'"([a-z0-9_]+)"', m.group(1)))
    return {n for n, c in every.items() if c > build_time[n] and not SERVICE_LINK.match(n)}


def cargo_package() -> dict:
    return tomllib.loads((ROOT / "Cargo.toml").read_text())["package"]


def yaml_docs(paths: list[str]) -> list[tuple[str, dict]]:
    out = []
    for p in paths:
        for d in yaml.safe_load_all(Path(p).read_text()):
            if d:
                out.append((p, d))
    return out


# ---- checks ------------------------------------------------------------------------------


def check_env() -> None:
    example = env_example()
    doc = compose()
    env = compose_env(doc)
    if not example:
        fail(".env.example names no variables")
    only_example = sorted(set(example) - set(env))
    only_compose = sorted(set(env) - set(example))
    if only_example:
        fail(f"in .env.example but not in docker-compose.yml's sessiond environment: {only_example}")
    if only_compose:
        fail(f"in docker-compose.yml's sessiond environment but not in .env.example: {only_compose}")
    for name in sorted(set(example) & set(env)):
        value, default = env[name], example[name]
        if name in COMPOSE_OVERRIDES:
            continue
        if default is None:
            # Unset by default: compose must pass it through only when .env sets it.
            if value is not None:
                fail(f"{name} is unset by default (.env.example) but docker-compose.yml gives it {value!r}; "
                     f"list it without a value")
            continue
        m = re.fullmatch(r"\$\{" + name + r":-(.*)\}", str(value))
        if not m:
            fail(f"docker-compose.yml: {name} should be \"${{{name}:-{default}}}\" (from .env), not {value!r}")
        elif m.group(1) != default:
            fail(f"{name}: default {m.group(1)!r} in docker-compose.yml, {default!r} in .env.example")
    # Every variable the service reads is documented.
    if (ROOT / "src").is_dir():
        read = src_variables()
        undocumented = sorted(read - set(example))
        if undocumented:
            fail(f"the sources read {undocumented}, which .env.example does not document")
        stale = sorted(n for n in example if n.startswith("SESSIOND_") and n not in read)
        if stale:
            fail(f".env.example documents {stale}, which nothing under src/ reads")
    # The compose file takes its settings from .env: a stray env_file would bypass the list.
    if "env_file" in doc["services"]["sessiond"]:
        fail("docker-compose.yml: sessiond uses env_file; name each variable under environment instead")
    done(f"{len(example)} variables, the same in .env.example and docker-compose.yml"
         + (" and read by src/" if (ROOT / "src").is_dir() else ""))


def check_ports() -> None:
    exposed = exposed_ports()
    if exposed != [8080]:
        fail(f"Dockerfile EXPOSE is {exposed}, expected exactly [8080]")
    port = exposed[0] if exposed else 8080
    listen_env = [a for i, a in dockerfile() if i == "ENV" and a.startswith("SESSIOND_LISTEN")]
    if listen_env and not listen_env[-1].endswith(f":{port}"):
        fail(f"Dockerfile ENV {listen_env[-1]} does not bind the EXPOSEd port {port}")
    doc = compose()
    svc = doc["services"]
    listen = compose_env(doc).get("SESSIOND_LISTEN")
    if listen != f"0.0.0.0:{port}":
        fail(f"docker-compose.yml SESSIOND_LISTEN is {listen!r}, expected '0.0.0.0:{port}' (Dockerfile EXPOSE)")
    if "ports" in svc["sessiond"]:
        fail("docker-compose.yml publishes sessiond's port directly; only the load balancer should")
    published = [str(p) for p in svc.get("nginx", {}).get("ports", [])]
    if not any(re.fullmatch(rf"(127\.0\.0\.1:|localhost:)?8080:{port}", p) for p in published):
        fail(f"docker-compose.yml nginx ports {published}: expected 127.0.0.1:8080:{port}")
    if svc["sessiond"].get("deploy", {}).get("replicas", 1) < 2:
        fail("docker-compose.yml: sessiond should run several replicas behind the load balancer")
    hc = svc["sessiond"].get("healthcheck", {}).get("test", [])
    if "healthcheck" not in hc:
        fail(f"docker-compose.yml sessiond healthcheck {hc} does not use `sessiond healthcheck`")
    nginx = (ROOT / "deploy/nginx.conf").read_text()
    listens = re.findall(r"^\s*listen\s+(\d+)\s*;", nginx, re.M)
    if listens != [str(port)]:
        fail(f"deploy/nginx.conf listens on {listens}, expected [{port}] (the published container port)")
    backends = re.findall(r"sessiond:(\d+)", nginx)
    if not backends or any(b != str(port) for b in backends):
        fail(f"deploy/nginx.conf proxies to sessiond ports {backends}, expected {port}")
    values = yaml.safe_load((ROOT / "helm/sessiond/values.yaml").read_text())
    if values.get("containerPort") != port:
        fail(f"helm values containerPort is {values.get('containerPort')}, expected {port}")
    done(f"port {port}: Dockerfile EXPOSE, compose SESSIOND_LISTEN and nginx, nginx.conf, Helm containerPort")


# The first open-source nginx with `resolve` on an upstream server.
NGINX_RESOLVE = (1, 27, 3)
# The longest fail_timeout on the upstream's server (see check_nginx).
MAX_FAIL_TIMEOUT_MS = 2000
# The line a local nginx without `resolve` tests in its place (the name "sessiond" does not
# resolve here, and nginx resolves a plain server name when it loads the file).
NGINX_STAND_IN = "server 127.0.0.1:{port};"


def nginx_version(text: str) -> tuple[float, ...]:
    """(major, minor, patch) in a version or `nginx -v` text; an image tag without a patch
    number ("1.28") runs the latest patch of its line."""
    m = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    if not m:
        return (0,)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3)) if m.group(3) else math.inf)


def check_nginx(out: str | None, local_version: str | None) -> None:
    conf = (ROOT / "deploy/nginx.conf").read_text()
    code = "\n".join(line.split("#", 1)[0] for line in conf.splitlines())
    port = (exposed_ports() or [8080])[0]
    up = re.search(r"^\s*upstream\s+sessiond\s*\{(.*?)\}", code, re.M | re.S)
    if not up:
        fail("deploy/nginx.conf: no `upstream sessiond { ... }` block (without one nginx keeps no "
             "keep-alive connections and opens one per request)")
        done("")
    body = up.group(1)
    if not re.search(r"^\s*zone\s+\S+\s+\d+[kKmM]?\s*;", body, re.M):
        fail("deploy/nginx.conf: upstream sessiond has no `zone` (`resolve` needs the shared memory)")
    servers = re.findall(r"^\s*server\s+([^;]*);", body, re.M)
    server = re.fullmatch(rf"sessiond:{port}\s+resolve((?:\s+\S+)*)", servers[0]) if len(servers) == 1 else None
    if not server:
        fail(f"deploy/nginx.conf: upstream sessiond servers {servers}, expected exactly one "
             f"'sessiond:{port} resolve ...' (every replica, re-resolved as compose scales)")
    params = dict(p.split("=", 1) for p in server.group(1).split() if "=" in p) if server else {}
    # After a failed connect nginx skips a replica for fail_timeout (default 10 s). Longer than
    # the gap between replicas in a rolling update, every replica ends up skipped at once and
    # nginx answers 502 "no live upstreams" (tests/rolling_restart.rs).
    ft = re.fullmatch(r"(\d+)(ms|s)?", params.get("fail_timeout", "10s"))
    ft_ms = int(ft.group(1)) * {"ms": 1, "s": 1000}[ft.group(2) or "s"] if ft else None
    if ft_ms is None or ft_ms > MAX_FAIL_TIMEOUT_MS:
        fail(f"deploy/nginx.conf: the sessiond server's fail_timeout is {params.get('fail_timeout', '10s (the default)')}; "
             f"at most {MAX_FAIL_TIMEOUT_MS} ms, or a rolling update that makes each replica refuse one "
             f"connect leaves nginx with no live upstream")
    if not re.search(r"^\s*resolver\s+\S+", code, re.M):
        fail("deploy/nginx.conf: no `resolver`: `resolve` needs one")
    keepalive = re.search(r"^\s*keepalive\s+(\d+)\s*;", body, re.M)
    if not keepalive or int(keepalive.group(1)) < 1:
        fail("deploy/nginx.conf: upstream sessiond has no `keepalive N` (idle connections to reuse)")
    # nginx must close an idle upstream connection before sessiond does: before the end of
    # sessiond's drain (its default: half the shutdown timeout, at most 5 s) and its idle limit.
    env = env_example()
    shutdown = int(env.get("SESSIOND_SHUTDOWN_TIMEOUT_MS") or 10000)
    drain = int(env.get("SESSIOND_DRAIN_MS") or min(5000, shutdown // 2))
    idle = int(env.get("SESSIOND_HEADER_TIMEOUT_MS") or 10000)
    kt = re.search(r"^\s*keepalive_timeout\s+(\d+)(ms|s|m)?\s*;", body, re.M)
    kt_ms = int(kt.group(1)) * {"ms": 1, "s": 1000, "m": 60000}[kt.group(2) or "s"] if kt else 60000
    if kt_ms >= min(drain, idle):
        fail(f"deploy/nginx.conf: upstream keepalive_timeout is {kt_ms} ms (nginx's default 60 s when unset); "
             f"it must be shorter than sessiond's drain ({drain} ms) and idle limit ({idle} ms), or nginx "
             f"sends requests on connections sessiond is closing")
    loc = re.search(r"location\s+/\s*\{(.*?)\}", code, re.S)
    loc = loc.group(1) if loc else ""
    for want, why in [
        (r"proxy_pass\s+http://sessiond\s*;", "proxy_pass http://sessiond; (the upstream, not a variable)"),
        (r"proxy_http_version\s+1\.1\s*;", "proxy_http_version 1.1; (keep-alive needs HTTP/1.1)"),
        (r'proxy_set_header\s+Connection\s+""\s*;', 'proxy_set_header Connection ""; (or the client\'s "close" reaches sessiond)'),
    ]:
        if not re.search(want, loc):
            fail(f"deploy/nginx.conf: location / lacks {why}")
    image = str(compose()["services"].get("nginx", {}).get("image", ""))
    m = re.fullmatch(r"nginx:(\d+\.\d+(?:\.\d+)?)(-\S+)?(@sha256:[0-9a-f]{64})?", image)
    if not m:
        fail(f"docker-compose.yml: nginx image {image!r} is not nginx:<version>[-variant]")
    elif nginx_version(m.group(1)) < NGINX_RESOLVE:
        fail(f"docker-compose.yml: nginx {m.group(1)} does not know `resolve` on an upstream server "
             f"(nginx >= {'.'.join(map(str, NGINX_RESOLVE))})")
    summary = (f"upstream sessiond: zone, server sessiond:{port} resolve fail_timeout {ft_ms} ms, keepalive "
               f"{keepalive.group(1) if keepalive else '?'}, keepalive_timeout {kt_ms} ms < drain {drain} ms; "
               f"compose runs {image}")
    if out:
        rendered = conf
        local_version = ".".join(str(x) for x in nginx_version(local_version or "") if x != math.inf)
        if nginx_version(local_version) < NGINX_RESOLVE:
            line = re.compile(rf"server sessiond:{port} resolve((?: [^;]*)?);")
            found = line.findall(conf)
            if len(found) != 1:
                fail(f"deploy/nginx.conf: expected exactly one {line.pattern!r} to stand in for")
            # The stand-in keeps the server's other parameters (fail_timeout), so nginx -t
            # checks them too.
            stand_in = NGINX_STAND_IN.format(port=port).removesuffix(";") + (found[0] if found else "") + ";"
            rendered = line.sub(lambda _: stand_in, conf, count=1)
            summary += (f"; the local nginx {local_version} predates `resolve`: "
                        f"{out} tests {stand_in!r} in its place")
        Path(out).write_text(rendered)
    done(summary)


def check_build() -> None:
    df = dockerfile()
    builds = []
    for instr, args in df:
        if instr == "RUN":
            for part in re.split(r"&&|;|\|\|", args):
                words = [w for w in shlex.split(part) if not w.startswith("--mount=")]
                if words[:2] == ["cargo", "build"]:
                    builds.append(" ".join(words))
    print(f"Dockerfile builds with: {builds}")
    if builds != [RELEASE_BUILD]:
        fail(f"Dockerfile should run exactly one `{RELEASE_BUILD}`, found {builds}")
    try:
        name = cargo_package()["name"]
    except FileNotFoundError:
        fail("no Cargo.toml")
        name = "sessiond"
    bins = [name]
    cargo = tomllib.loads((ROOT / "Cargo.toml").read_text())
    bins += [b["name"] for b in cargo.get("bin", [])]
    copied = re.findall(r"target/release/([A-Za-z0-9_-]+)", " ".join(a for i, a in df if i in ("RUN", "COPY")))
    if not copied or any(c not in bins for c in copied):
        fail(f"Dockerfile copies target/release/{copied}, expected the crate's binary {bins}")
    entry = [a for i, a in df if i == "ENTRYPOINT"]
    if entry and f"/{name}\"" not in entry[-1]:
        fail(f"ENTRYPOINT {entry[-1]} does not run the {name} binary")
    ci = ROOT / ".ci/run"
    if ci.exists():
        text = ci.read_text()
        if not re.search(r"(^|[\s;&(])" + re.escape(RELEASE_BUILD) + r"(?=\s|$|;|&|\))", text, re.M):
            fail(f".ci/run does not run `{RELEASE_BUILD}`, so CI does not test the binary the image ships")
        else:
            print(f".ci/run runs `{RELEASE_BUILD}` too")
        other = [m.group(0) for m in re.finditer(r"cargo build[^\n;&|]*--release[^\n;&|]*", text)
                 if m.group(0).strip() != RELEASE_BUILD]
        if other:
            fail(f".ci/run also builds differently for release: {other}")
    else:
        fail(".ci/run does not exist: nothing to compare the Dockerfile's build with")
    lock = ROOT / "Cargo.lock"
    if not lock.exists():
        fail("no Cargo.lock: `cargo build --locked` needs it committed")
    elif 'name = "openssl-sys"' in lock.read_text():
        if "libssl-dev" not in (ROOT / "Dockerfile").read_text():
            fail("Cargo.lock has openssl-sys but the builder stage installs no libssl-dev/pkg-config")
    done(f"the image ships `{RELEASE_BUILD}`'s target/release/{name}, the build .ci/run tests")


def check_dockerfile() -> None:
    df = dockerfile()
    froms = [a for i, a in df if i == "FROM"]
    if len(froms) < 2:
        fail(f"expected a multi-stage build (2+ FROM), found {froms}")
    runtime = froms[-1].split()[0] if froms else ""
    if not ("distroless" in runtime or "slim" in runtime):
        fail(f"runtime image {runtime} is neither distroless nor slim")
    if ":" not in runtime or runtime.endswith(":latest"):
        fail(f"runtime image {runtime} has no pinned tag")
    users = [a for i, a in df if i == "USER"]
    if not users or not re.fullmatch(r"[1-9][0-9]*(:[0-9]+)?", users[-1]):
        fail(f"last USER should be a numeric non-root uid (Kubernetes runAsNonRoot verifies it), got {users}")
    entry = [a for i, a in df if i == "ENTRYPOINT"]
    if not entry or not entry[-1].startswith("["):
        fail(f"ENTRYPOINT must be exec form (the binary is PID 1 and gets SIGTERM), got {entry}")
    else:
        json.loads(entry[-1])
    hcs = [a for i, a in df if i == "HEALTHCHECK"]
    if not hcs or "healthcheck" not in hcs[-1].split("CMD", 1)[-1] or "CMD [" not in hcs[-1]:
        fail(f"HEALTHCHECK should run `sessiond healthcheck` in exec form, got {hcs}")
    ignore = (ROOT / ".dockerignore").read_text().split()
    if not any(p.strip("/") in ("target", "**/target") for p in ignore):
        fail(".dockerignore does not exclude target/")
    if ".env" not in ignore:
        fail(".dockerignore does not exclude .env (local secrets)")
    pins = check_pins(df)
    done(f"runtime {runtime}, USER {users[-1]}, exec ENTRYPOINT, HEALTHCHECK via `sessiond healthcheck`; {pins}")


# Debian codename of each release the runtime image may be built on.
DEBIAN = {"bookworm": "12", "trixie": "13"}


def check_pins(df: list[tuple[str, str]]) -> str:
    """Both base images pinned: the builder to the exact Rust CI's rustc reports, on the same
    Debian release as the distroless runtime, which is pinned to its nonroot tag (with a digest
    where one was established); OCI labels; the revision passed to the build; stripped binary."""
    import subprocess

    froms = [a.split()[0] for i, a in df if i == "FROM"]
    builder, runtime = (froms[0], froms[-1]) if len(froms) >= 2 else ("", "")
    m = re.fullmatch(r"rust:(\d+\.\d+\.\d+)-slim-(\w+)", builder)
    try:
        rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True, check=True).stdout
        ci_rust = re.match(r"rustc (\d+\.\d+\.\d+)", rustc).group(1)
    except (OSError, subprocess.CalledProcessError, AttributeError) as e:
        fail(f"cannot run `rustc --version` to compare with the Dockerfile: {e}")
        ci_rust = "?"
    if not m:
        fail(f"builder image {builder!r} is not pinned to an exact Rust release (rust:X.Y.Z-slim-<debian>)")
    elif m.group(1) != ci_rust:
        fail(f"builder image {builder} builds with Rust {m.group(1)}, CI with {ci_rust} (`rustc --version`): "
             f"set FROM rust:{ci_rust}-slim-{m.group(2)}")
    r = re.fullmatch(r"gcr\.io/distroless/cc-debian(\d+):nonroot(@sha256:[0-9a-f]{64})?", runtime)
    if not r:
        fail(f"runtime image {runtime!r} should be gcr.io/distroless/cc-debian<N>:nonroot, optionally "
             f"@sha256:<digest> (distroless has no versioned tags)")
    elif m and DEBIAN.get(m.group(2)) != r.group(1):
        fail(f"builder is Debian {m.group(2)}, runtime debian{r.group(1)}: the binary needs the builder's glibc")
    for name in ("rust-toolchain", "rust-toolchain.toml"):
        f = ROOT / name
        if f.exists() and m:
            chan = re.search(r"(\d+\.\d+\.\d+|stable|beta|nightly\S*)", f.read_text())
            if not chan or chan.group(1) != m.group(1):
                fail(f"{name} names {chan.group(1) if chan else '?'}, the Dockerfile builds with {m.group(1)}")
    want = tomllib.loads((ROOT / "Cargo.toml").read_text())
    msrv = want["package"].get("rust-version")
    if m and msrv and tuple(map(int, msrv.split("."))) > tuple(map(int, m.group(1).split("."))):
        fail(f"Cargo.toml rust-version {msrv} is newer than the builder's Rust {m.group(1)}")
    if want.get("profile", {}).get("release", {}).get("strip") is not True:
        fail("Cargo.toml [profile.release] lacks strip = true (the image ships the release binary)")
    labels: dict[str, str] = {}
    for i, a in df:
        if i == "LABEL":
            labels.update(w.split("=", 1) for w in shlex.split(a) if "=" in w)
    chart = yaml.safe_load((ROOT / "helm/sessiond/Chart.yaml").read_text())
    expect = {
        "org.opencontainers.image.version": want["package"]["version"],
        "org.opencontainers.image.source": chart.get("home"),
    }
    for k, v in expect.items():
        if labels.get(k) != v:
            fail(f"Dockerfile LABEL {k}={labels.get(k)!r}, expected {v!r}")
    if chart.get("home") not in (chart.get("sources") or []):
        fail("Chart.yaml sources should list its home (the repository)")
    if not chart.get("maintainers"):
        fail("Chart.yaml has no maintainers")
    if "SESSIOND_GIT_REVISION" not in labels.get("org.opencontainers.image.revision", ""):
        fail("Dockerfile LABEL org.opencontainers.image.revision should come from SESSIOND_GIT_REVISION")
    stages = " ".join(f"{i} {a}" for i, a in df).split(" FROM ")
    if "ARG SESSIOND_GIT_REVISION" not in stages[0] or "cargo build" not in stages[0]:
        fail("the builder stage should declare ARG SESSIOND_GIT_REVISION (build.rs reads it: .git is not in the context)")
    return (f"builder {builder} = CI's rustc {ci_rust}, runtime {runtime}, labels "
            f"{', '.join(k.rsplit('.', 1)[1] for k in sorted(labels) if k.startswith('org.opencontainers'))}")


def check_helm_env(paths: list[str]) -> None:
    example = env_example()
    settable = {n for n in example if n != "SESSIOND_CONFIG"}
    seen: set[str] = set()
    for path, d in yaml_docs(paths):
        kind = d.get("kind")
        if kind == "ConfigMap" and d["metadata"]["name"].endswith("sessiond") or (
            kind == "ConfigMap" and "SESSIOND_LISTEN" in d.get("data", {})
        ):
            seen |= set(d.get("data", {}))
        if kind == "Deployment":
            for c in d["spec"]["template"]["spec"]["containers"]:
                for e in c.get("env", []):
                    if e["name"].startswith("SESSIOND_") or e["name"] == "RUST_LOG":
                        seen.add(e["name"])
            spec = d["spec"]["template"]["spec"]
            if "sessiond" in [c["name"] for c in spec["containers"]] and spec.get("enableServiceLinks") is not False:
                fail(f"{path}: Deployment {d['metadata']['name']} lacks enableServiceLinks: false")
    unknown = sorted(seen - set(example))
    missing = sorted(settable - seen)
    if unknown:
        fail(f"the chart sets {unknown}, which are not sessiond settings (.env.example)")
    if missing:
        fail(f"no rendered value set sets {missing}: the chart cannot configure them")
    done(f"the chart sets {len(seen)} settings, all documented, none missing")


def check_version() -> None:
    chart = yaml.safe_load((ROOT / "helm/sessiond/Chart.yaml").read_text())
    crate = cargo_package()["version"]
    if str(chart["appVersion"]) != crate:
        fail(f"Chart.yaml appVersion {chart['appVersion']!r} != Cargo.toml version {crate!r}")
    done(f"appVersion {chart['appVersion']} = Cargo.toml version")


def check_skips(config: str, readme: str) -> None:
    skips = yaml.safe_load(Path(config).read_text()).get("skip-check", [])
    text = Path(readme).read_text()
    for s in skips:
        if not re.search(rf"\|\s*`?{re.escape(s)}`?\s*\|[^|\n]*\|\s*\S", text):
            fail(f"{config} skips {s}, but {readme} has no table row giving the reason")
    done(f"{len(skips)} skipped checks, each with its reason in {readme}: {', '.join(skips)}")


def check_invalid(values_file: str, log_file: str) -> None:
    first = Path(values_file).read_text().splitlines()[0]
    m = re.match(r"#\s*expect:\s*(.+)", first)
    if not m:
        fail(f"{values_file}: first line must be '# expect: <text of the error>'")
        done("")
    out = Path(log_file).read_text()
    if m.group(1).strip() not in out:
        fail(f"{values_file}: expected an error containing {m.group(1).strip()!r}, got: {out.strip()[-400:]}")
    done(f"{Path(values_file).name}: refused ({m.group(1).strip()})")


def shell_commands(md: Path) -> list[str]:
    """The commands in a Markdown file's ```sh blocks, continuation lines joined."""
    cmds, in_block, cur = [], False, ""
    for line in md.read_text().splitlines():
        if line.startswith("```"):
            in_block = not in_block and line.strip() in ("```sh", "```bash", "```shell")
            continue
        if not in_block:
            continue
        code = line.split("  #", 1)[0].rstrip() if "#" in line else line.rstrip()
        if code.endswith("\\"):
            cur += code[:-1] + " "
            continue
        cur += code
        if cur.strip():
            cmds.append(cur.strip())
        cur = ""
    return cmds


def check_docs(helm: str, outdir: str, files: list[str]) -> None:
    import subprocess

    services = set(compose()["services"])
    rendered = 0
    for f in files:
        md = ROOT / f
        cmds = shell_commands(md)
        secrets = set()
        for c in cmds:
            for part in re.split(r"&&|;", c):
                words = shlex.split(part)
                if words[:1] == ["kubectl"] and "create" in words and "secret" in words:
                    name = words[words.index("generic") + 1] if "generic" in words else None
                    keys = [w.split("=", 2)[1] for w in words if w.startswith("--from-literal=")]
                    secrets |= {(name, k) for k in keys}
        for c in cmds:
            words = shlex.split(c)
            shown = " ".join(words)
            if words[:2] == ["helm", "upgrade"]:
                # An upgrade renders like an install; with --reuse-values the release's other
                # values are unknown here, so the chart's defaults stand in for them.
                words = [w for w in words if w not in ("--install", "--reuse-values", "--reset-values",
                                                        "--reset-then-reuse-values")]
            elif words[:2] != ["helm", "install"]:
                if words[:2] == ["docker", "compose"]:
                    named = re.findall(r"--scale (\S+)=|(?:restart|logs(?: -f)?|stop|start) (\S+)", c)
                    for a, b in named:
                        if (a or b) not in services:
                            fail(f"{f}: `{c}` names service {a or b!r}, not in docker-compose.yml")
                continue
            args, skip = [], False
            for w in words[2:]:
                if skip:
                    skip = False
                    continue
                if w in ("--create-namespace", "--wait", "--atomic"):
                    continue
                if w == "--timeout":
                    skip = True
                    continue
                args.append(w)
            sets = dict(w.split("=", 1) for i, w in enumerate(words) if i and words[i - 1] == "--set")
            if words[:2] == ["helm", "upgrade"] and "--reuse-values" in c.split() \
                    and not {"redis.url", "redis.existingSecret", "devRedis.enabled"} & set(sets) \
                    and "-f" not in words and "--values" not in words:
                # The release being upgraded has its Redis choice already (the chart requires
                # one); a stand-in URL takes its place here.
                args += ["--set", "redis.url=redis://stand-in.example:6379/0"]
            if "redis.existingSecret" in sets:
                key = sets.get("redis.existingSecretKey", "redis-url")
                if (sets["redis.existingSecret"], key) not in secrets:
                    fail(f"{f}: `{c[:60]}...` uses Secret {sets['redis.existingSecret']}/{key}, "
                         f"which no `kubectl create secret` on that page creates")
            rendered += 1
            out = Path(outdir) / f"doc-{md.stem.lower()}-{rendered}.yaml"
            r = subprocess.run([helm, "template", *args], cwd=ROOT, capture_output=True, text=True)
            if r.returncode != 0:
                fail(f"{f}: `{shown}` does not render: {r.stderr.strip()}")
                continue
            out.write_text(r.stdout)
            print(f"{f}: {shown} -> {out.name}")
    if rendered == 0:
        fail(f"no helm install/upgrade command found in {files}")
    done(f"{rendered} documented helm commands render")


# ---- monitoring ----------------------------------------------------------------------------


def series_names() -> set[str]:
    names = set(PROMETHEUS_SERIES)
    for name, kind in EXPORTED_METRICS.items():
        if kind == "histogram":
            names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
        else:
            names.add(name)
    return names


PROMQL_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
                   "group_left", "group_right", "inf", "nan", "atan2", "start", "end"}


def promql_metrics(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (a lexical approximation that is exact for
    the expressions of this repository: strings, label matchers, ranges and grouping lists are
    dropped; what is left that is not a function, keyword or number is a metric name)."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    if re.search(r"__name__", s):
        fail(f"selects by __name__, which this check cannot follow: {expr!r}")
    s = re.sub(r"\{[^}]*\}", " ", s)
    s = re.sub(r"\[[^\]]*\]", " ", s)
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    found = set()
    for m in re.finditer(r"(?<![0-9.])[a-zA-Z_:][a-zA-Z0-9_:]*", s):
        if m.group(0).lower() in PROMQL_KEYWORDS or re.match(r"\s*\(", s[m.end():]):
            continue
        found.add(m.group(0))
    return found


def unknown_metrics(where: str, expr: str) -> None:
    unknown = sorted(promql_metrics(expr) - series_names())
    if unknown:
        fail(f"{where}: queries {unknown}, which sessiond does not export ({expr.strip()[:120]!r})")


def rule_exprs(groups: list[dict]) -> list[tuple[str, str]]:
    return [(r.get("alert") or r.get("record"), str(r["expr"])) for g in groups for r in g["rules"]]


def check_metric_names() -> None:
    src = ROOT / "src/metrics.rs"
    if src.exists():
        text = src.read_text()
        registered = set()
        for m in re.finditer(r"\.register(_with_unit)?\(\s*\"([a-z_]+)\"(.{0,200}?Unit::(\w+))?", text, re.S):
            unit = m.group(4).lower() if m.group(1) and m.group(4) else ""
            registered.add("sessiond_" + m.group(2) + (f"_{unit}" if unit else ""))
        prefix = re.search(r"Registry::with_prefix\(\"(\w+)\"\)", text)
        if not prefix or prefix.group(1) != "sessiond":
            fail("src/metrics.rs: the registry no longer has the prefix \"sessiond\"")
        listed = {re.sub(r"_(total|info)$", "", n) for n in EXPORTED_METRICS}
        if registered != listed:
            fail(f"src/metrics.rs registers {sorted(registered - listed)} which EXPORTED_METRICS in "
                 f"ci/deploy_checks.py lacks, and not {sorted(listed - registered)} which it lists: "
                 f"update the list, the dashboard, the alerts and docs/OPERATING.md together")
    used = set()
    for name, expr in rule_exprs(yaml.safe_load((ROOT / ALERTS_FILE).read_text())["groups"]):
        unknown_metrics(f"{ALERTS_FILE} {name}", expr)
        used |= promql_metrics(expr)
    for title, expr in dashboard_exprs(json.loads((ROOT / DASHBOARD_FILE).read_text())):
        unknown_metrics(f"{DASHBOARD_FILE} panel {title!r}", expr)
        used |= promql_metrics(expr)
    done(f"{len(EXPORTED_METRICS)} metrics, as src/metrics.rs registers them; the alerts and the "
         f"dashboard query {len(used)} series names, all exported")


def check_monitoring(outdir: str, paths: list[str]) -> None:
    import jsonschema

    out = Path(outdir)
    (out / "core").mkdir(parents=True, exist_ok=True)
    (out / "rules").mkdir(parents=True, exist_ok=True)
    schemas = {k: json.loads((ROOT / f"ci/schemas/{k.lower()}.json").read_text()) for k in CUSTOM_RESOURCES}
    seen = {k: 0 for k in CUSTOM_RESOURCES}
    for p in paths:
        docs = [d for _, d in yaml_docs([p])]
        core = [d for d in docs if not str(d.get("apiVersion", "")).startswith(CUSTOM_GROUPS)]
        mon = [d for d in docs if str(d.get("apiVersion", "")).startswith(CUSTOM_GROUPS)]
        (out / "core" / Path(p).name).write_text(yaml.safe_dump_all(core, sort_keys=False))
        if Path(p).name == "default.yaml" and mon:
            fail(f"{p}: the default values render {[d['kind'] for d in mon]}; they must be opt-in")
        services = [d for d in core if d.get("kind") == "Service"]
        for d in mon:
            kind, name = d.get("kind"), d.get("metadata", {}).get("name")
            where = f"{Path(p).name}: {kind} {name}"
            if kind not in schemas or d.get("apiVersion") != CUSTOM_RESOURCES[kind]:
                fail(f"{where}: unexpected {d.get('apiVersion')} kind; ci/schemas has no schema for it")
                continue
            seen[kind] += 1
            for e in jsonschema.Draft7Validator(schemas[kind]).iter_errors(d):
                fail(f"{where}: {'.'.join(str(x) for x in e.absolute_path) or '(root)'}: {e.message}")
            if kind == "ServiceMonitor":
                spec = d["spec"]
                want = spec.get("selector", {}).get("matchLabels", {})
                names = spec.get("namespaceSelector", {}).get("matchNames", [d["metadata"]["namespace"]])
                hits = [s for s in services if want.items() <= s["metadata"].get("labels", {}).items()
                        and s["metadata"].get("namespace") in names]
                if len(hits) != 1:
                    fail(f"{where}: selects {len(hits)} of the release's Services, expected exactly 1")
                    continue
                ports = {pt.get("name") for pt in hits[0]["spec"]["ports"]}
                for ep in spec.get("endpoints", []):
                    if ep.get("port") not in ports:
                        fail(f"{where}: endpoint port {ep.get('port')!r} is not a port of Service "
                             f"{hits[0]['metadata']['name']} {sorted(ports)}")
                    if ep.get("path") != "/metrics":
                        fail(f"{where}: scrapes {ep.get('path')!r}, not /metrics")
            elif kind == "HTTPRoute":
                backends = {b["name"] for r in d["spec"]["rules"] for b in r.get("backendRefs", [])}
                if backends != {s["metadata"]["name"] for s in services}:
                    fail(f"{where}: routes to {sorted(backends)}, not to the release's Service")
            else:
                rule_file = out / "rules" / f"{Path(p).stem}-{name}.yaml"
                rule_file.write_text(yaml.safe_dump(d["spec"], sort_keys=False))
                alerts = [r.get("alert") for g in d["spec"]["groups"] for r in g["rules"] if r.get("alert")]
                missing = [a for a in ALERTS if a not in alerts]
                print(f"{where}: {len(alerts)} alerts -> {rule_file.name}"
                      + (f" (disabled: {', '.join(missing)})" if missing else ""))
                for alert, expr in rule_exprs(d["spec"]["groups"]):
                    # Names with a colon are recording rules (additionalRules may add them).
                    unknown = {n for n in promql_metrics(expr) - series_names() if ":" not in n}
                    if unknown:
                        fail(f"{where} {alert}: queries {sorted(unknown)}, which sessiond does not export")
    for kind, n in seen.items():
        if n == 0:
            fail(f"no value set in helm/sessiond/ci renders a {kind}: enable it in one (monitoring-values.yaml, gateway-values.yaml)")
    done(f"{seen['ServiceMonitor']} ServiceMonitor(s), {seen['PrometheusRule']} PrometheusRule(s) and "
         f"{seen['HTTPRoute']} HTTPRoute(s) valid against ci/schemas; none with the default values")


def alerts_from_chart(helm: str) -> str:
    """The chart's PrometheusRule rendered with job="sessiond", as a Prometheus rule file."""
    import subprocess
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as values:
        values.write('redis:\n  url: "redis://redis.example:6379/0"\n'
                     'metrics:\n  prometheusRule:\n    enabled: true\n    selector: \'job="sessiond"\'\n')
        values.flush()
        r = subprocess.run([helm, "template", "sessiond", "helm/sessiond", "-f", values.name,
                            "--show-only", "templates/prometheusrule.yaml"],
                           cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        fail(f"helm template --show-only templates/prometheusrule.yaml failed: {r.stderr.strip()}")
        done("")
    lines = r.stdout.splitlines()
    start = lines.index("spec:") + 1
    body = [line[2:] if line.startswith("  ") else line for line in lines[start:]]
    header = [
        "# sessiond's alerts as a plain Prometheus rule file, for a Prometheus without the Operator:",
        "# list it under rule_files (see prometheus.yml here). It selects the series of job",
        '# "sessiond"; if your scrape job has another name, replace job="sessiond" throughout.',
        "# docs/OPERATING.md says what each alert means and what to do.",
        "#",
        "# GENERATED from helm/sessiond/templates/prometheusrule.yaml, do not edit: change the",
        "# template, then run `python3 ci/deploy_checks.py rules-sync \"$(../shared/tools/get-helm)\" --write`.",
        "# ci/check-deploy checks the two agree and runs the unit tests in tests.yaml.",
    ]
    return "\n".join(header + body) + "\n"


def check_rules_sync(helm: str, write: bool) -> None:
    want = alerts_from_chart(helm)
    path = ROOT / ALERTS_FILE
    if write:
        path.write_text(want)
        print(f"wrote {ALERTS_FILE}")
    have = path.read_text() if path.exists() else ""
    if yaml.safe_load(have) != yaml.safe_load(want):
        import difflib

        diff = difflib.unified_diff(have.splitlines(), want.splitlines(), ALERTS_FILE, "chart", lineterm="", n=1)
        fail(f"{ALERTS_FILE} differs from the chart's PrometheusRule (job=\"sessiond\"); regenerate it "
             f"with `python3 ci/deploy_checks.py rules-sync HELM --write`:\n" + "\n".join(list(diff)[:40]))
    alerts = [r.get("alert") for g in yaml.safe_load(want)["groups"] for r in g["rules"]]
    if alerts != ALERTS:
        fail(f"the chart's default alerts are {alerts}, expected {ALERTS}")
    done(f"{ALERTS_FILE} = the chart's PrometheusRule with job=\"sessiond\": {', '.join(alerts)}")


def dashboard_panels(dash: dict) -> list[dict]:
    out = []
    for p in dash.get("panels", []):
        out.append(p)
        out += p.get("panels", [])  # panels of a collapsed row
    return out


def dashboard_exprs(dash: dict) -> list[tuple[str, str]]:
    return [(p.get("title", "?"), t["expr"]) for p in dashboard_panels(dash)
            for t in p.get("targets", []) if t.get("expr")]


def grafana_to_promql(expr: str) -> str:
    """A dashboard query with Grafana's variables replaced, as Grafana would send it."""
    expr = re.sub(r"\$\{?__(rate_interval|interval|range)\}?", "5m", expr)
    return re.sub(r"\$\{?(\w+)(:\w+)?\}?", ".*", expr)


def check_dashboard(rules_out: str) -> None:
    path = ROOT / DASHBOARD_FILE
    try:
        dash = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        fail(f"{DASHBOARD_FILE}: not JSON: {e}")
        done("")
    for key in ("title", "uid", "schemaVersion", "panels", "templating"):
        if key not in dash:
            fail(f"{DASHBOARD_FILE}: no {key!r}")
    if dash.get("id") is not None:
        fail(f"{DASHBOARD_FILE}: \"id\" must be null, or importing it overwrites another dashboard")
    variables = {v["name"]: v for v in dash.get("templating", {}).get("list", [])}
    ds = variables.get("datasource", {})
    if ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        fail(f"{DASHBOARD_FILE}: needs a templating variable \"datasource\" of type datasource, query prometheus")
    for name, v in variables.items():
        if v.get("type") == "query":
            if v.get("datasource", {}).get("uid") != "${datasource}":
                fail(f"{DASHBOARD_FILE}: variable {name} does not query ${{datasource}}")
            q = v.get("query")
            q = q.get("query", "") if isinstance(q, dict) else str(q)
            m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", q)
            if not m:
                fail(f"{DASHBOARD_FILE}: variable {name}: expected label_values(<selector>, <label>), got {q!r}")
            else:
                unknown_metrics(f"{DASHBOARD_FILE} variable {name}", grafana_to_promql(m.group(1)))
    panels = dashboard_panels(dash)
    ids = [p.get("id") for p in panels]
    if len(set(ids)) != len(ids) or None in ids:
        fail(f"{DASHBOARD_FILE}: panel ids must be present and unique, got {ids}")
    cells: dict[tuple[int, int], str] = {}
    for p in panels:
        g = p.get("gridPos", {})
        title = p.get("title", "?")
        if not all(isinstance(g.get(k), int) for k in "xywh") or g["x"] + g["w"] > 24:
            fail(f"{DASHBOARD_FILE}: panel {title!r}: gridPos {g} is not within the 24 columns")
            continue
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                if (x, y) in cells:
                    fail(f"{DASHBOARD_FILE}: panels {cells[(x, y)]!r} and {title!r} overlap at {(x, y)}")
                    break
                cells[(x, y)] = title
            else:
                continue
            break
        if p.get("type") == "row":
            continue
        if p.get("datasource", {}).get("uid") != "${datasource}":
            fail(f"{DASHBOARD_FILE}: panel {title!r} does not use the ${{datasource}} variable")
        if not [t for t in p.get("targets", []) if t.get("expr")]:
            fail(f"{DASHBOARD_FILE}: panel {title!r} has no query")
        for t in p.get("targets", []):
            if "$job" not in t.get("expr", "") and "${job}" not in t.get("expr", ""):
                fail(f"{DASHBOARD_FILE}: panel {title!r} query {t.get('refId')} ignores the $job variable")
    titles = [p.get("title") for p in panels if p.get("type") != "row"]
    missing = [t for t in DASHBOARD_PANELS if t not in titles]
    if missing:
        fail(f"{DASHBOARD_FILE}: missing panels {missing}")
    extra = [t for t in titles if t not in DASHBOARD_PANELS]
    if extra:
        fail(f"{DASHBOARD_FILE}: panels {extra} are not in DASHBOARD_PANELS (ci/deploy_checks.py) "
             f"nor, presumably, in docs/OPERATING.md")
    used = set()
    rules = []
    for p in panels:
        for t in p.get("targets", []):
            if not t.get("expr"):
                continue
            expr = grafana_to_promql(t["expr"])
            unknown_metrics(f"{DASHBOARD_FILE} panel {p.get('title')!r}", expr)
            used |= promql_metrics(expr)
            rules.append({"record": f"dashboard:panel_{p['id']}_{t.get('refId', 'A')}", "expr": expr})
    shown = {n for n in EXPORTED_METRICS if any(u == n or u.startswith(n + "_") for u in used)}
    if shown != set(EXPORTED_METRICS):
        fail(f"{DASHBOARD_FILE}: no panel shows {sorted(set(EXPORTED_METRICS) - shown)}")
    Path(rules_out).write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, sort_keys=False))
    done(f"{len(titles)} panels, {len(rules)} queries over {len(EXPORTED_METRICS)} metrics, no overlap; "
         f"queries written to {Path(rules_out).name} for promtool")


KUBERNETES_SD_KEYS = {"role", "namespaces", "selectors", "api_server", "kubeconfig_file",
                      "attach_metadata", "basic_auth", "authorization", "oauth2", "tls_config",
                      "proxy_url", "follow_redirects", "enable_http2"}
KUBERNETES_SD_ROLES = {"node", "pod", "service", "endpoints", "endpointslice", "ingress"}


def without_kubernetes_sd(where: str, config: dict) -> dict:
    """The configuration with each kubernetes_sd_configs replaced by a static target, after
    checking its shape here: Debian's promtool is built without Kubernetes discovery and
    refuses the field outright."""
    for job in config.get("scrape_configs", []):
        sds = job.pop("kubernetes_sd_configs", None)
        if sds is None:
            continue
        for sd in sds if isinstance(sds, list) else [sds]:
            if not isinstance(sd, dict):
                fail(f"{where}: job {job.get('job_name')}: kubernetes_sd_configs entries must be maps")
                continue
            if sd.get("role") not in KUBERNETES_SD_ROLES:
                fail(f"{where}: job {job.get('job_name')}: kubernetes_sd_configs role {sd.get('role')!r} "
                     f"is not one of {sorted(KUBERNETES_SD_ROLES)}")
            if set(sd) - KUBERNETES_SD_KEYS:
                fail(f"{where}: job {job.get('job_name')}: unknown kubernetes_sd_configs fields {sorted(set(sd) - KUBERNETES_SD_KEYS)}")
            ns = sd.get("namespaces", {})
            if not isinstance(ns, dict) or set(ns) - {"names", "own_namespace"} or \
                    not all(isinstance(n, str) for n in ns.get("names", [])):
                fail(f"{where}: job {job.get('job_name')}: namespaces must be {{names: [...], own_namespace: bool}}")
        job.setdefault("static_configs", []).append({"targets": ["127.0.0.1:8080"]})
    return config


def write_doc_configs(outdir: str, args: list[str]) -> None:
    no_k8s_sd = "--without-kubernetes-sd" in args
    files = [a for a in args if not a.startswith("--")]
    n = 0
    for f in files:
        block: list[str] | None = None
        for line in (ROOT / f).read_text().splitlines():
            if block is None:
                if line.strip() in ("```yaml", "```yml"):
                    block = []
                continue
            if line.startswith("```"):
                text = "\n".join(block) + "\n"
                if re.search(r"^scrape_configs:", text, re.M):
                    n += 1
                    out = Path(outdir) / f"doc-{n}.yml"
                    if no_k8s_sd and "kubernetes_sd_configs" in text:
                        text = yaml.safe_dump(without_kubernetes_sd(f"{f} (config {n})", yaml.safe_load(text)),
                                              sort_keys=False)
                        print(f"{f}: kubernetes_sd_configs checked here, replaced by a static target for promtool")
                    out.write_text(text)
                    print(f"{f}: Prometheus configuration -> {out.name}")
                block = None
                continue
            block.append(line)
    if n == 0:
        fail(f"no Prometheus configuration (a ```yaml block with scrape_configs:) in {files}")
    done(f"{n} Prometheus configuration(s) from {', '.join(files)}")

if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    {
        "env": check_env,
        "ports": check_ports,
        "nginx": lambda: check_nginx(args[0] if args else None, args[1] if len(args) > 1 else None),
        "build": check_build,
        "dockerfile": check_dockerfile,
        "helm-env": lambda: check_helm_env(args),
        "version": check_version,
        "skips": lambda: check_skips(*args),
        "invalid": lambda: check_invalid(*args),
        "docs": lambda: check_docs(args[0], args[1], args[2:]),
        "monitoring": lambda: check_monitoring(args[0], args[1:]),
        "rules-sync": lambda: check_rules_sync(args[0], "--write" in args[1:]),
        "dashboard": lambda: check_dashboard(args[0]),
        "metric-names": check_metric_names,
        "doc-configs": lambda: write_doc_configs(args[0], args[1:]),
    }[cmd]()
