#!/usr/bin/env python3
"""Consistency checks between the deployment files, run by ci/check-deploy.

Each subcommand checks one thing, prints what it compared, and exits 1 with the reasons when
the files disagree:

  env        .env.example <-> docker-compose.yml <-> the variables the Rust sources read
  ports      the Dockerfile's EXPOSE <-> compose, nginx.conf, the Helm chart
  build      the Dockerfile's cargo build <-> the release build .ci/run runs and tests
  dockerfile runtime conventions: non-root numeric USER, exec-form ENTRYPOINT, HEALTHCHECK
  helm-env   every SESSIOND_* the rendered chart sets is a real setting, and every setting
             can be set through the chart
  version    Chart.yaml appVersion <-> Cargo.toml version
  skips      every checkov check skipped in ci/checkov.yaml is explained in the chart README
  invalid    a values file under ci/helm-invalid-values failed with the error it expects
  docs       the helm install/upgrade commands in the docs render (as helm template), the
             Secrets they use are created there, the compose services they name exist

Needs PyYAML (present in the check virtualenv, which checkov depends on).
"""

from __future__ import annotations

import json
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
    done(f"runtime {runtime}, USER {users[-1]}, exec ENTRYPOINT, HEALTHCHECK via `sessiond healthcheck`")


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
            if words[:2] == ["helm", "upgrade"] and "--install" in words:
                words.remove("--install")
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


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    {
        "env": check_env,
        "ports": check_ports,
        "build": check_build,
        "dockerfile": check_dockerfile,
        "helm-env": lambda: check_helm_env(args),
        "version": check_version,
        "skips": lambda: check_skips(*args),
        "invalid": lambda: check_invalid(*args),
        "docs": lambda: check_docs(args[0], args[1], args[2:]),
    }[cmd]()
