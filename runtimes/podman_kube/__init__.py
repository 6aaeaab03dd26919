"""The ``podman-kube`` runtime: Kubernetes Pod manifests on Podman."""

from ankaios_agent.runtimes.podman_kube.config import RUNTIME_NAME, KubeConfig, parse_kube_config
from ankaios_agent.runtimes.podman_kube.runtime import PodmanKubeRuntime

__all__ = ["RUNTIME_NAME", "KubeConfig", "PodmanKubeRuntime", "parse_kube_config"]
