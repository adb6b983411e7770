"""tpp-ops finds each service's replicas by URL, not by one fixed local port."""

from tpp_ops.settings import service_urls


def test_urls_from_the_environment_win_over_local_ports() -> None:
    env = {
        "TPP_OPS_REPORTING_URLS": "http://reporting-0:8003/, http://reporting-1:8003",
        "TPP_REPORTING_PORT": "8003",
    }
    assert service_urls("reporting", env) == ["http://reporting-0:8003", "http://reporting-1:8003"]


def test_local_replicas_are_found_at_the_ports_platform_sh_gives_them() -> None:
    env = {"TPP_ENROLLMENT_PORT": "8002", "TPP_REPLICAS": "3"}
    assert service_urls("enrollment", env) == [
        "http://127.0.0.1:8002",
        "http://127.0.0.1:8012",
        "http://127.0.0.1:8022",
    ]
    assert service_urls("enrollment", {"TPP_ENROLLMENT_PORT": "8002"}) == ["http://127.0.0.1:8002"]
    assert service_urls("registry", {}) == []
