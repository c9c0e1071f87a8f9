#!/usr/bin/env python3
"""Checks of the Helm chart against the sessiond binary and against its own promises, run by
ci/check-deploy (each subcommand prints what it compared and exits 1 with the reasons):

  settings HELM BIN RENDERED...
      Every chart value that becomes a SESSIOND_* setting is refused by the chart exactly where
      the binary refuses it. The binary is the oracle: `sessiond --version` loads and checks
      its settings first, exiting 2 on a bad one and 0 otherwise, so nothing is hard-coded here.
        - integers: the values that change a SESSIOND_* variable are found by rendering each
          integer leaf of values.schema.json with another value; for each, the binary's lowest
          and highest accepted value are found by bisection (0 .. 2^53-1) and must equal the
          schema's minimum and maximum (the maximum is capped at 2^53-1, the largest integer
          Helm reads exactly from a values file); then min-1, min, max and max+1 are rendered
          with `helm template`: whatever renders must start the binary. A setting the binary
          does not parse yet (NOT_PARSED_YET: it accepts any text) is listed, not compared;
        - strings, enums and combinations (Redis URLs and modes, API keys, key prefix): probes
          below, each rendered and run; what renders must start the binary, and what the chart
          refuses must be refused by the binary too unless the probe says why the chart is
          stricter;
        - the default values with a Redis URL, and every value set, as rendered by
          ci/check-deploy (RENDERED files): their environment starts the binary.
  features RENDERED_DIR
      What the value sets in helm/sessiond/ci promise: no duplicate keys in any manifest,
      Recreate without rollingUpdate, the Deployment keeps replicas under an HPA, commonLabels
      on every object, extra volumes and envFrom, Ingress and HTTPRoute, the helm test pod
      outside the Service, a PodDisruptionBudget by default.
  package HELM
      `helm package` keeps every chart file README.md names (ci/*-values.yaml examples).

The binary comes from $SESSIOND_BIN (default target/release/sessiond, which .ci/run builds
before ci/check-deploy).
"""

from __future__ import annotations

import base64
import json
import math
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "helm/sessiond"
# The largest integer a values file carries exactly (Helm reads numbers as float64).
CAP = 2**53 - 1
# The explicit Redis choice the chart requires; stands in for the user's.
BASE_VALUES = {"redis": {"url": "redis://redis.example:6379/0"}}
# Stand-ins for values the chart takes from Secrets it does not render.
EXTERNAL_STAND_INS = {
    "SESSIOND_REDIS_URL": "redis://stand-in.example:6379/0",
    "SESSIOND_API_KEYS": "stand-in:secret",
}
# Where the chart is knowingly stricter than the binary, for an integer value's lower bound.
STRICTER_MINIMUM = {
    "containerPort": "sessiond binds port 0 (any free port), which no Kubernetes containerPort can be",
}
# Values that must move together while another is probed: path -> f(probed value) -> values.
COMPANIONS = {
    # SESSIOND_DEFAULT_EXPIRES_IN may not exceed SESSIOND_MAX_EXPIRES_IN.
    "config.defaultExpiresIn": lambda v, s: {"config.maxExpiresIn": s["config.maxExpiresIn"][1]},
    "config.maxExpiresIn": lambda v, s: {"config.defaultExpiresIn": s["config.defaultExpiresIn"][0]},
    # terminationGracePeriodSeconds must exceed preStop sleep + the shutdown timeout (the chart),
    # and SESSIOND_DRAIN_MS must be shorter than SESSIOND_SHUTDOWN_TIMEOUT_MS (both).
    "config.shutdownTimeoutMs": lambda v, s: {
        "terminationGracePeriodSeconds": max(1, math.ceil(max(v, 0) / 1000) + 3600),
        "config.drainMs": s["config.drainMs"][0]},
    "config.drainMs": lambda v, s: {
        "config.shutdownTimeoutMs": s["config.shutdownTimeoutMs"][1],
        "terminationGracePeriodSeconds": math.ceil(s["config.shutdownTimeoutMs"][1] / 1000) + 3600},
}
# Settings config::KEYS already names whose parsing lands later: while `sessiond --version`
# accepts any text for one of them, its bounds cannot be found by running the binary, and the
# schema's stand (those the setting is specified with). Once sessiond checks the value, the
# bounds are compared as for every other setting (and the entry can go).
NOT_PARSED_YET: dict[str, str] = {}
HEX = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
# (what, values, environment for the binary when the chart refuses, why the chart may be stricter)
PROBES: list[tuple[str, dict, dict, str | None]] = [
    *[(f"redis.url={u!r}", {"redis": {"url": u}}, {"SESSIOND_REDIS_URL": u}, None) for u in [
        "redis://h", "redis://h:6379/0", "rediss://user:pw@h.example:6380/2", "redis://:pw@h",
        "redis://[::1]:6379", "redis://h:6379/0?protocol=resp3", "redis://h:0", "redis://h:/3",
        "redis://h:6379/-1", "redis://", "redis://h:65536", "redis://h:6379/x", "redis://h:6379/0/1",
        "http://h:6379", "redis://h:6379,redis://i:6379", "redis://h h",
    ]],
    ("redis.url=' redis://h '", {"redis": {"url": " redis://h "}}, {"SESSIOND_REDIS_URL": " redis://h "},
     "sessiond trims blanks around a URL; the chart refuses them as a likely copy-paste slip"),
    ("redis.mode=cluster, two URLs", {"redis": {"url": "redis://a:6379,redis://b:6379", "mode": "cluster"}},
     {"SESSIOND_REDIS_URL": "redis://a:6379,redis://b:6379", "SESSIOND_REDIS_MODE": "cluster"}, None),
    ("redis.mode=sentinel with a master", {"redis": {"url": "redis://s1:26379,redis://s2:26379", "mode": "sentinel",
                                                     "sentinelMaster": "mymaster"}},
     {"SESSIOND_REDIS_URL": "redis://s1:26379,redis://s2:26379", "SESSIOND_REDIS_MODE": "sentinel",
      "SESSIOND_REDIS_SENTINEL_MASTER": "mymaster"}, None),
    ("redis.mode=sentinel without a master", {"redis": {"url": "redis://s1:26379", "mode": "sentinel"}},
     {"SESSIOND_REDIS_URL": "redis://s1:26379", "SESSIOND_REDIS_MODE": "sentinel"}, None),
    ("redis.mode=sentinel, master ' '", {"redis": {"url": "redis://s1:26379", "mode": "sentinel", "sentinelMaster": " "}},
     {"SESSIOND_REDIS_URL": "redis://s1:26379", "SESSIOND_REDIS_MODE": "sentinel",
      "SESSIOND_REDIS_SENTINEL_MASTER": " "}, None),
    ("redis.mode=bogus", {"redis": {"mode": "bogus"}}, {"SESSIOND_REDIS_MODE": "bogus"}, None),
    *[(f"apiKeys.value={k!r}", {"apiKeys": {"value": k}}, {"SESSIOND_API_KEYS": k}, None) for k in [
        "gw:secret", f"gw:sha256:{HEX}", f"gw:sha256: {HEX.upper()} ", "a:x, b:y", "gw:sha2", "gw: spaced secret",
        "gw", ":secret", "gw:", "gw:sha256:abc", "a:x,a:y", "a:x,", "g w:x", "\u00e9:x",
    ]],
    *[(f"config.keyPrefix={p!r}", {"config": {"keyPrefix": p}}, {"SESSIOND_KEY_PREFIX": p}, None)
      for p in ["a", "app:sessions:", " "]],
    ("config.keyPrefix=''", {"config": {"keyPrefix": ""}}, {"SESSIOND_KEY_PREFIX": ""},
     "sessiond reads an empty SESSIOND_KEY_PREFIX as unset and silently uses \"sessiond:\""),
    *[(f"config.logFormat={f!r}", {"config": {"logFormat": f}}, {"SESSIOND_LOG_FORMAT": f}, None)
      for f in ["text", "json", "xml"]],
    *[(f"config.metricsAuth={b!r}", {"config": {"metricsAuth": b}}, {"SESSIOND_METRICS_AUTH": str(b).lower()}, None)
      for b in [True, False]],
    ("config.metricsAuth=True with apiKeys", {"config": {"metricsAuth": True}, "apiKeys": {"value": "gw:secret"}},
     {"SESSIOND_METRICS_AUTH": "true", "SESSIOND_API_KEYS": "gw:secret"}, None),
    *[(f"apiKeys.value={k!r}", {"apiKeys": {"value": k}}, {"SESSIOND_API_KEYS": k}, None) for k in [
        "a:same,b:same", f"a:sha256:{HEX},b:sha256:{HEX.upper()}", f"a:test,b:sha256:{HEX}",
        "a:same,b: same",
    ]],
    *[(f"config.authCookie={c!r}", {"config": {"authCookie": c}}, {"SESSIOND_AUTH_COOKIE": c}, None)
      for c in ["", "session", "__Host-sid"]],
    *[(f"config.authCookie={c!r}", {"config": {"authCookie": c}}, {"SESSIOND_AUTH_COOKIE": c}, None)
      for c in ["a b", "sid;", "\u00e9", "a=b"]],
    ("config.authCookie=' sid'", {"config": {"authCookie": " sid"}}, {"SESSIOND_AUTH_COOKIE": " sid"},
     "sessiond trims blanks around the cookie name; the chart refuses them as a likely slip"),
]

problems: list[str] = []


def fail(msg: str) -> None:
    problems.append(msg)


def done(summary: str) -> None:
    if problems:
        for p in problems:
            print(f"  - {p}")
        sys.exit(1)
    print(summary)


def nested(path: str, value) -> dict:
    out = value
    for key in reversed(path.split(".")):
        out = {key: out}
    return out


def deep_merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


class Chart:
    def __init__(self, helm: str):
        self.helm = helm
        self.tmp = Path(tempfile.mkdtemp())
        self.n = 0

    def render(self, values: dict) -> tuple[bool, str]:
        """(rendered?, manifests or the error)."""
        self.n += 1
        f = self.tmp / f"v{self.n}.yaml"
        f.write_text(yaml.safe_dump(values))
        r = subprocess.run([self.helm, "template", "sessiond", str(CHART), "--namespace", "sessiond", "-f", str(f)],
                           capture_output=True, text=True)
        return (r.returncode == 0, r.stdout if r.returncode == 0 else r.stderr.strip())


def container_env(manifests: str) -> dict[str, str]:
    """The environment of the sessiond container as the rendered manifests define it."""
    docs = [d for d in yaml.safe_load_all(manifests) if d]
    by_kind = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    deps = [d for d in docs if d["kind"] == "Deployment"
            and any(c["name"] == "sessiond" for c in d["spec"]["template"]["spec"]["containers"])]
    if len(deps) != 1:
        raise ValueError(f"expected one sessiond Deployment, found {len(deps)}")
    c = next(c for c in deps[0]["spec"]["template"]["spec"]["containers"] if c["name"] == "sessiond")
    env: dict[str, str] = {}
    for src in c.get("envFrom", []):
        cm = by_kind.get(("ConfigMap", src.get("configMapRef", {}).get("name")))
        if cm:
            env.update({k: str(v) for k, v in cm.get("data", {}).items()})
    for e in c.get("env", []):
        if "value" in e:
            env[e["name"]] = str(e["value"])
        elif "secretKeyRef" in e.get("valueFrom", {}):
            ref = e["valueFrom"]["secretKeyRef"]
            secret = by_kind.get(("Secret", ref["name"]))
            if secret and ref["key"] in secret.get("data", {}):
                env[e["name"]] = base64.b64decode(secret["data"][ref["key"]]).decode()
            elif e["name"] in EXTERNAL_STAND_INS:
                env[e["name"]] = EXTERNAL_STAND_INS[e["name"]]
    # A settings file mounted from the user's ConfigMap or Secret does not exist here.
    env.pop("SESSIOND_CONFIG", None)
    return env


class Binary:
    def __init__(self, path: str):
        self.path = path
        self.runs = 0

    def accepts(self, env: dict[str, str]) -> tuple[bool, str]:
        self.runs += 1
        r = subprocess.run([self.path, "--version"], env=env, capture_output=True, text=True, timeout=30)
        if r.returncode not in (0, 2):
            raise RuntimeError(f"{self.path} --version exited {r.returncode}: {r.stderr.strip()}")
        return r.returncode == 0, r.stderr.strip()


def integer_leaves(schema: dict, prefix: str = "") -> list[tuple[str, dict]]:
    out = []
    for k, v in schema.get("properties", {}).items():
        path = f"{prefix}{k}"
        t = v.get("type")
        types = t if isinstance(t, list) else [t]
        if "integer" in types:
            out.append((path, v))
        elif "object" in types or "properties" in v:
            out += integer_leaves(v, path + ".")
    return out


def get(values: dict, path: str):
    for k in path.split("."):
        if not isinstance(values, dict) or k not in values:
            return None
        values = values[k]
    return values


def check_settings(helm: str, binary_path: str, rendered: list[str]) -> None:
    if not os.access(binary_path, os.X_OK):
        fail(f"no sessiond binary at {binary_path}: build it (cargo build --release --locked) or set SESSIOND_BIN")
        done("")
    chart, binary = Chart(helm), Binary(binary_path)
    schema = json.loads((CHART / "values.schema.json").read_text())
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    ok, base_out = chart.render(BASE_VALUES)
    if not ok:
        fail(f"the default values with redis.url do not render: {base_out}")
        done("")
    base_env = container_env(base_out)
    accepted, err = binary.accepts(base_env)
    if not accepted:
        fail(f"sessiond refuses the default values' settings: {err}")
        done("")

    # 1. Which integer values reach a SESSIOND_* variable, and how (the variable's text with
    #    the number in it, e.g. "0.0.0.0:{}" for containerPort).
    mapped: dict[str, tuple[str, str, int, dict]] = {}
    for path, spec in integer_leaves(schema):
        default = get(defaults, path)
        for probe in ([default + 1, default - 1] if isinstance(default, int) else [2]):
            ok, out = chart.render(deep_merge(BASE_VALUES, nested(path, probe)))
            if not ok:
                continue
            env = container_env(out)
            changed = [k for k in env if k.startswith("SESSIOND_") and env.get(k) != base_env.get(k)]
            if len(changed) == 1 and str(probe) in env[changed[0]]:
                var = changed[0]
                mapped[path] = (var, env[var].replace(str(probe), "{}", 1), probe, spec)
            elif len(changed) > 1:
                fail(f"{path}={probe} changes several settings {changed}; this check cannot follow it")
            break
    if not mapped:
        fail("no integer chart value reaches a SESSIOND_* variable: the discovery is broken")
        done("")

    # 2. The schema's bounds against the binary's.
    bounds = {}
    for path, (_, _, _, spec) in mapped.items():
        lo = spec.get("minimum", -math.inf) if "exclusiveMinimum" not in spec else spec["exclusiveMinimum"] + 1
        hi = spec.get("maximum", math.inf) if "exclusiveMaximum" not in spec else spec["exclusiveMaximum"] - 1
        bounds[path] = (lo, hi)
    rows = []
    for path, (var, text, known, spec) in sorted(mapped.items()):
        extra_values = COMPANIONS[path](known, bounds) if path in COMPANIONS else {}
        extra: dict = {}
        for p, v in extra_values.items():
            extra = deep_merge(extra, nested(p, v))
        ok, out = chart.render(deep_merge(deep_merge(BASE_VALUES, extra), nested(path, known)))
        env0 = container_env(out) if ok else dict(base_env)

        def run(n: int) -> tuple[bool, str]:
            return binary.accepts({**env0, var: text.format(n)})

        if not run(known)[0]:
            fail(f"{path} ({var}): sessiond refuses {known}, the value that found the mapping: {run(known)[1]}")
            continue
        if binary.accepts({**env0, var: "not-a-number"})[0]:
            if var in NOT_PARSED_YET:
                rows.append(f"{path:32} {var:30} sessiond does not check it yet; schema "
                            f"{bounds[path][0]}..{bounds[path][1]} ({NOT_PARSED_YET[var]})")
            else:
                fail(f"{path} ({var}): sessiond accepts \"not-a-number\" for it, so it checks no bound at all")
            continue
        if run(0)[0]:
            b_lo = 0
        else:
            a, b = 0, known          # refused, accepted
            while b - a > 1:
                m = (a + b) // 2
                a, b = (a, m) if run(m)[0] else (m, b)
            b_lo = b
        if run(CAP)[0]:
            b_hi = CAP
        else:
            a, b = known, CAP        # accepted, refused
            while b - a > 1:
                m = (a + b) // 2
                a, b = (m, b) if run(m)[0] else (a, m)
            b_hi = a
        s_lo, s_hi = bounds[path]
        want_lo = b_lo
        if path in STRICTER_MINIMUM and s_lo > b_lo:
            want_lo = s_lo
        rows.append(f"{path:32} {var:30} sessiond {b_lo}..{b_hi}  schema {s_lo}..{s_hi}")
        if s_lo != want_lo:
            fail(f"{path} ({var}): schema minimum is {s_lo}, sessiond's lowest accepted value is {b_lo}: "
                 f"set \"minimum\": {b_lo} in values.schema.json")
        if s_hi != b_hi:
            note = " (2^53-1, the chart's ceiling: Helm reads larger numbers inexactly)" if b_hi == CAP else ""
            fail(f"{path} ({var}): schema maximum is {s_hi}, sessiond's highest accepted value is {b_hi}{note}: "
                 f"set \"maximum\": {b_hi} in values.schema.json")
        # 3. Render the schema's boundary values: what renders must start the binary.
        for v in sorted({s_lo - 1, s_lo, s_hi - 1, s_hi, s_hi + 1} - {-math.inf, math.inf}):
            v = int(v)
            ev = COMPANIONS[path](v, bounds) if path in COMPANIONS else {}
            values = BASE_VALUES
            for p, x in ev.items():
                values = deep_merge(values, nested(p, x))
            ok, out = chart.render(deep_merge(values, nested(path, v)))
            if ok:
                good, err = binary.accepts(container_env(out))
                if not good:
                    fail(f"{path}={v}: the chart renders it, sessiond refuses it (pods would crash-loop): {err}")
            elif run(v)[0] and b_lo <= v <= b_hi and not (v < s_lo and path in STRICTER_MINIMUM):
                fail(f"{path}={v}: the chart refuses it, sessiond accepts it: {out.splitlines()[-1][:200]}")

    # 4. Strings, enums and combinations.
    probe_rows = []
    for what, values, env, stricter in PROBES:
        ok, out = chart.render(deep_merge(BASE_VALUES, values))
        if ok:
            good, err = binary.accepts(container_env(out))
            verdict = "both accept" if good else "CHART ACCEPTS, SESSIOND REFUSES"
            if not good:
                fail(f"{what}: the chart renders it, sessiond refuses it: {err}")
        else:
            good, _ = binary.accepts({**base_env, **env})
            verdict = "both refuse" if not good else ("chart stricter: " + stricter if stricter else "CHART REFUSES, SESSIOND ACCEPTS")
            if good and not stricter:
                fail(f"{what}: the chart refuses it, sessiond accepts it: {out.splitlines()[-1][:200]}")
        probe_rows.append(f"{what:58} {verdict}")

    # 5. Every rendered value set starts the binary.
    for f in rendered:
        try:
            env = container_env(Path(f).read_text())
        except ValueError as e:
            fail(f"{f}: {e}")
            continue
        good, err = binary.accepts(env)
        if not good:
            fail(f"{Path(f).name}: sessiond refuses the settings this value set renders: {err}")
    print("integer values (sessiond's accepted range found by running it, the schema's declared one):")
    print("\n".join("  " + r for r in rows))
    print("probes:")
    print("\n".join("  " + r for r in probe_rows))
    done(f"{len(mapped)} integer values and {len(PROBES)} probes agree with {binary_path} "
         f"({binary.runs} runs, {chart.n} renders); {len(rendered)} rendered value sets start it")


# ---- features ------------------------------------------------------------------------------


class NoDuplicatesLoader(yaml.SafeLoader):
    pass


def _mapping(loader, node, deep=False):
    seen = set()
    for k, _ in node.value:
        key = loader.construct_object(k, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", k.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep)


NoDuplicatesLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def load(path: Path) -> list[dict]:
    try:
        return [d for d in yaml.load_all(path.read_text(), Loader=NoDuplicatesLoader) if d]
    except yaml.YAMLError as e:
        fail(f"{path.name}: {e}")
        return []


def kinds(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d.get("kind") == kind]


def check_features(rendered_dir: str) -> None:
    d = Path(rendered_dir)
    sets = {p.stem: load(p) for p in sorted(d.glob("*.yaml"))}
    values = {p.stem: yaml.safe_load(p.read_text()) or {} for p in sorted((CHART / "ci").glob("*.yaml"))}
    checked = []

    def need(name: str) -> list[dict]:
        if name not in sets:
            fail(f"no rendered {name}.yaml: helm/sessiond/ci/{name}.yaml is missing or did not render")
            return []
        checked.append(name)
        return sets[name]

    # The default values: a PodDisruptionBudget that lets one pod go at a time.
    pdbs = kinds(need("default"), "PodDisruptionBudget")
    if len(pdbs) != 1 or pdbs[0]["spec"].get("maxUnavailable") != 1:
        fail(f"default values: expected one PodDisruptionBudget with maxUnavailable 1, got {[p['spec'] for p in pdbs]}")
    for name, docs in sets.items():
        deps = [x for x in kinds(docs, "Deployment") if x["metadata"]["name"].endswith("sessiond")]
        for dep in deps:
            strategy = dep["spec"].get("strategy", {})
            if strategy.get("type") == "Recreate" and "rollingUpdate" in strategy:
                fail(f"{name}: a Recreate Deployment with a rollingUpdate block (the API server refuses it)")
            if "replicas" not in dep["spec"]:
                fail(f"{name}: the Deployment has no replicas (an upgrade would drop it to 1 pod)")
        hpas = kinds(docs, "HorizontalPodAutoscaler")
        for h in hpas:
            if deps and deps[0]["spec"].get("replicas") != h["spec"]["minReplicas"]:
                fail(f"{name}: with an HPA the Deployment should keep replicas (minReplicas {h['spec']['minReplicas']} "
                     f"where nothing is live yet), has {deps[0]['spec'].get('replicas')}")
        # The helm test pod is not one of the Service's endpoints.
        svc = [s for s in kinds(docs, "Service") if s["metadata"]["name"].endswith("sessiond")]
        for pod in kinds(docs, "Pod"):
            labels = pod["metadata"].get("labels", {})
            for s in svc:
                if s["spec"]["selector"].items() <= labels.items():
                    fail(f"{name}: the Service {s['metadata']['name']} selects the test pod {pod['metadata']['name']}")
        # commonLabels on every object.
        common = (values.get(name) or {}).get("commonLabels") or {}
        for x in docs:
            have = x.get("metadata", {}).get("labels", {})
            if not common.items() <= have.items():
                fail(f"{name}: {x['kind']} {x['metadata']['name']} lacks commonLabels {common}")
            if x["kind"] in ("Deployment", "StatefulSet"):
                pl = x["spec"]["template"]["metadata"].get("labels", {})
                if not common.items() <= pl.items():
                    fail(f"{name}: the pods of {x['kind']} {x['metadata']['name']} lack commonLabels")
    # Value sets that exercise one promise each.
    docs = need("recreate-values")
    dep = kinds(docs, "Deployment")
    if dep and dep[0]["spec"]["strategy"] != {"type": "Recreate"}:
        fail(f"recreate-values: strategy is {dep[0]['spec']['strategy']}, expected {{type: Recreate}}")
    if dep:
        tsc = dep[0]["spec"]["template"]["spec"].get("topologySpreadConstraints", [])
        own = [c for c in tsc if c["labelSelector"] != {"matchLabels": {
            "app.kubernetes.io/name": "sessiond", "app.kubernetes.io/instance": "sessiond",
            "app.kubernetes.io/component": "server"}}]
        if not own:
            fail("recreate-values: the constraint with its own labelSelector lost it")
        tag = values["recreate-values"]["image"]["tag"]
        if dep[0]["metadata"]["labels"].get("app.kubernetes.io/version") != tag:
            fail(f"recreate-values: app.kubernetes.io/version should be image.tag {tag}")
    docs = need("hpa-pdb-values")
    if not kinds(docs, "HorizontalPodAutoscaler"):
        fail("hpa-pdb-values: no HorizontalPodAutoscaler")
    docs = need("private-ca-values")
    dep = kinds(docs, "Deployment")
    if dep:
        spec = dep[0]["spec"]["template"]["spec"]
        c = next(c for c in spec["containers"] if c["name"] == "sessiond")
        want = values["private-ca-values"]
        if spec.get("volumes") != want["extraVolumes"]:
            fail("private-ca-values: extraVolumes not rendered as the pod's volumes")
        if c.get("volumeMounts") != want["extraVolumeMounts"]:
            fail("private-ca-values: extraVolumeMounts not rendered as the container's volumeMounts")
        if c["envFrom"][:-1] != want["extraEnvFrom"] or "configMapRef" not in c["envFrom"][-1]:
            fail("private-ca-values: extraEnvFrom must come before the chart's ConfigMap in envFrom")
        names = [e["name"] for e in c.get("env", [])]
        if not {"SSL_CERT_FILE", "SESSIOND_CONFIG"} <= set(names):
            fail(f"private-ca-values: env lacks SSL_CERT_FILE / SESSIOND_CONFIG: {names}")
    docs = need("ingress-values")
    ing = kinds(docs, "Ingress")
    if len(ing) != 1:
        fail("ingress-values: expected one Ingress")
    else:
        for rule in ing[0]["spec"]["rules"]:
            for p in rule["http"]["paths"]:
                if p["backend"]["service"]["name"] != "sessiond" or p["backend"]["service"]["port"] != {"name": "http"}:
                    fail(f"ingress-values: path {p['path']} does not lead to the sessiond Service's http port")
    docs = need("gateway-values")
    routes = kinds(docs, "HTTPRoute")
    if len(routes) != 1 or routes[0]["spec"]["rules"][0]["backendRefs"] != [{"name": "sessiond", "port": 8080}]:
        fail("gateway-values: expected one HTTPRoute to the sessiond Service on port 8080")
    tests = [p for p in kinds(sets.get("default", []), "Pod")
             if p["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"]
    if len(tests) != 1:
        fail("default values: expected one `helm test` pod")
    done(f"no duplicate keys in {len(sets)} renderings; promises of {', '.join(checked)} hold")


# ---- package -------------------------------------------------------------------------------


def check_package(helm: str) -> None:
    out = Path(tempfile.mkdtemp())
    r = subprocess.run([helm, "package", str(CHART), "-d", str(out)], capture_output=True, text=True)
    if r.returncode != 0:
        fail(f"helm package failed: {r.stderr.strip()}")
        done("")
    tgz = next(out.glob("*.tgz"))
    with tarfile.open(tgz) as t:
        files = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
    readme = (CHART / "README.md").read_text()
    named = sorted(set(re.findall(r"`(ci/[A-Za-z0-9_.-]+-values\.yaml)`", readme)))
    if not named:
        fail("the chart README names no ci/*.yaml example; expected several")
    for n in named:
        if not (CHART / n).exists():
            fail(f"README.md names {n}, which does not exist")
        elif n not in files:
            fail(f"README.md names {n}, which `helm package` leaves out (.helmignore)")
    for n in ("values.schema.json", "README.md", "templates/NOTES.txt"):
        if n not in files:
            fail(f"the package lacks {n}")
    done(f"{tgz.name}: {len(files)} files, including the {len(named)} examples README.md names")


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    if cmd == "settings":
        check_settings(args[0], args[1], args[2:])
    elif cmd == "features":
        check_features(args[0])
    elif cmd == "package":
        check_package(args[0])
    else:
        sys.exit(f"unknown subcommand {cmd}")
