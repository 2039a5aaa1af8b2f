#!/usr/bin/env python3
"""test_manifests: the Kubernetes manifests and compose file hang together.

No cluster runs here, so this checks what can be checked without one: every
file parses, each kind has the fields the deployment relies on (limits 4 CPU /
4Gi, probes on the proxy port, selectors that match the pod labels, a grace
period longer than the drain), the ConfigMap's proxy.conf passes `proxyd -t`
with the binary under test, and the compose file builds proxyd from
docker/Dockerfile next to an origin.
"""
import os
import shutil
import subprocess
import sys
import tempfile

try:
    import yaml
except ImportError:
    print("SKIPPED: python3-yaml is not installed (apt-get install python3-yaml)")
    sys.exit(77)

SRC = os.environ["PROXYD_SRC"]
BIN = os.environ["PROXYD_BIN"]
K8S = os.path.join(SRC, "docker", "k8s")
passed = failed = 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL: %s %s" % (name, detail))


def load(name):
    with open(os.path.join(K8S, name)) as f:
        return yaml.safe_load(f)


kust = load("kustomization.yaml")
docs = {}
services = {}
for res in kust["resources"]:
    d = load(res)
    if d["kind"] == "Service":
        services[d["metadata"]["name"]] = d
    docs.setdefault(d["kind"], d)  # the first Service: the clients' one
check("kinds", set(docs) == {"ConfigMap", "Deployment", "Service",
                             "HorizontalPodAutoscaler", "PodDisruptionBudget"}, sorted(docs))
check("two services", len(services) == 2, sorted(services))

dep = docs["Deployment"]
pod = dep["spec"]["template"]
labels = pod["metadata"]["labels"]
check("deployment selector", dep["spec"]["selector"]["matchLabels"].items() <= labels.items())
c = pod["spec"]["containers"][0]
lim = c["resources"]["limits"]
check("cpu limit 4", str(lim["cpu"]) == "4", lim)
check("memory limit 4Gi", lim["memory"] == "4Gi", lim)
ports = {p["name"]: p["containerPort"] for p in c["ports"]}
check("proxy port", ports.get("proxy") == 3128, ports)
rp = c["readinessProbe"]
check("readiness asks /healthz", rp.get("exec", {}).get("command") == ["/usr/local/bin/proxyd-healthcheck"], rp)
env = {e["name"]: e["value"] for e in c.get("env", [])}
lp = c["livenessProbe"]
check("liveness on the proxy port", lp.get("tcpSocket", {}).get("port") in ("proxy", 3128), lp)
with open(os.path.join(SRC, "docker", "Dockerfile")) as f:
    dockerfile = f.read()
check("image has the healthcheck script", "/usr/local/bin/proxyd-healthcheck" in dockerfile)
check("non-root", pod["spec"]["securityContext"]["runAsNonRoot"] is True)
check("grace > drain", pod["spec"]["terminationGracePeriodSeconds"] > 30)
vols = {v["name"]: v for v in pod["spec"]["volumes"]}
mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
check("conf mounted at /etc/proxyd", mounts.get("conf") == "/etc/proxyd", mounts)
check("conf from the ConfigMap",
      vols["conf"]["configMap"]["name"] == docs["ConfigMap"]["metadata"]["name"])

svc = docs["Service"]
check("service selector", svc["spec"]["selector"].items() <= labels.items())
check("service port", svc["spec"]["ports"][0]["port"] == 3128)
check("service targetPort", svc["spec"]["ports"][0]["targetPort"] in ("proxy", 3128))

# the cluster: a headless Service over the same pods, named by proxyd_cluster
peers = [d for n, d in services.items() if d["spec"].get("clusterIP") == "None"]
check("one headless service", len(peers) == 1, sorted(services))
if peers:
    ps = peers[0]
    check("headless service selects the pods", ps["spec"]["selector"].items() <= labels.items())
    check("headless service lists ready pods only", not ps["spec"].get("publishNotReadyAddresses", False))
    check("headless service port", ps["spec"]["ports"][0]["port"] == 3128 and
          ps["spec"]["ports"][0]["targetPort"] in ("proxy", 3128), ps["spec"]["ports"])
    import re
    cl = re.findall(r"(?m)^proxyd_cluster\s+(\S+)(.*)$", docs["ConfigMap"]["data"]["proxy.conf"])
    check("ConfigMap has one proxyd_cluster line", len(cl) == 1, cl)
    if cl:
        check("proxyd_cluster names the headless service", cl[0][0] == ps["metadata"]["name"], cl)
        # no port given: the members' port is the pods' http_port (3128)
        port = re.match(r"\s+(\d+)", cl[0][1])
        check("proxyd_cluster port is the proxy port", not port or port.group(1) == "3128", cl)
        check("pods listen on 3128 everywhere (the pod IP)",
              "\nhttp_port 3128\n" in docs["ConfigMap"]["data"]["proxy.conf"])

hpa = docs["HorizontalPodAutoscaler"]
check("hpa target", hpa["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"])
metric = hpa["spec"]["metrics"][0]["resource"]
check("hpa on cpu", metric["name"] == "cpu", metric)
check("hpa min<=max", 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"])

pdb = docs["PodDisruptionBudget"]
check("pdb selector", pdb["spec"]["selector"]["matchLabels"].items() <= labels.items())
# docs/deployment.md: "at most one pod down in voluntary disruptions", at any scale
check("pdb maxUnavailable 1", pdb["spec"].get("maxUnavailable") == 1, pdb["spec"])
check("pdb has no minAvailable", "minAvailable" not in pdb["spec"], pdb["spec"])
check("pdb leaves pods up", pdb["spec"].get("maxUnavailable", 0) < hpa["spec"]["minReplicas"])
with open(os.path.join(SRC, "docs", "deployment.md")) as f:
    check("docs say what the pdb says", "`maxUnavailable: 1`" in f.read())

conf = docs["ConfigMap"]["data"]["proxy.conf"]
with tempfile.NamedTemporaryFile("w", suffix=".conf") as f:
    f.write(conf)
    f.flush()
    r = subprocess.run([BIN, "-t", "-c", f.name], capture_output=True, text=True, timeout=30)
check("ConfigMap proxy.conf passes proxyd -t", r.returncode == 0, r.stderr)
check("ConfigMap proxy.conf has no warnings", "(0 errors, 0 warnings)" in r.stderr, r.stderr)
check("ConfigMap workers match the CPU limit", "\nworkers 4\n" in conf)
check("ConfigMap admin_port is the probe's", "\nadmin_port 127.0.0.1:%s\n" % env.get("PROXYD_ADMIN_PORT") in conf,
      env)

with open(os.path.join(SRC, "docker", "compose.yaml")) as f:
    compose = yaml.safe_load(f)
svcs = compose["services"]
check("compose services", {"proxyd", "origin"} <= set(svcs), sorted(svcs))
check("compose builds docker/Dockerfile", svcs["proxyd"]["build"]["dockerfile"] == "docker/Dockerfile")
check("compose origin Dockerfile exists", os.path.exists(os.path.join(
    SRC, "docker", svcs["origin"]["build"]["context"], svcs["origin"]["build"]["dockerfile"])))
check("compose grace", svcs["proxyd"]["stop_grace_period"] in ("45s",))
# Debian 12's docker-compose 1.29 rejects a top-level `name:`; both it and the
# compose v2 plugin must accept the file (neither needs a daemon for `config`)
check("compose: no top-level name", "name" not in compose, sorted(compose))
compose_env = dict(os.environ, BASE_IMAGE="local/bookworm")
clients = []
if shutil.which("docker-compose"):
    clients.append(["docker-compose"])
if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True,
                                              timeout=30).returncode == 0:
    clients.append(["docker", "compose"])
for cl in clients:
    r = subprocess.run(cl + ["-f", os.path.join(SRC, "docker", "compose.yaml"), "config", "-q"],
                       capture_output=True, text=True, timeout=60, env=compose_env)
    check("%s accepts compose.yaml" % " ".join(cl), r.returncode == 0, r.stdout + r.stderr)
if not clients:
    print("note: neither docker-compose nor `docker compose` installed: compose.yaml not validated")

# the libvirt domain: virtio NIC and disk; against libvirt's schema when the
# validator (libvirt-clients) is installed
import shutil
import xml.etree.ElementTree as ET
xml_path = os.path.join(SRC, "vm-images", "proxyd.xml")
dom = ET.parse(xml_path).getroot()
check("libvirt NIC model virtio",
      dom.find("devices/interface/model").get("type") == "virtio")
check("libvirt disk on virtio", dom.find("devices/disk/target").get("bus") == "virtio")
check("libvirt serial console", dom.find("devices/console/target").get("type") == "serial")
if shutil.which("virt-xml-validate"):
    r = subprocess.run(["virt-xml-validate", xml_path, "domain"], capture_output=True,
                       text=True, timeout=60)
    check("virt-xml-validate proxyd.xml", r.returncode == 0, r.stdout + r.stderr)
else:
    print("note: virt-xml-validate not installed (libvirt-clients): schema not checked")

print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
