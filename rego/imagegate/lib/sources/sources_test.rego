package imagegate.lib.sources_test

import data.imagegate.fixtures_test as fixtures
import data.imagegate.lib.sources

test_host_is_lower_case_with_hub_aliases_folded if {
	sources.host("REGISTRY.Example.COM") == "registry.example.com"
	sources.host("index.docker.io") == "docker.io"
	sources.host("Registry-1.Docker.IO") == "docker.io"
	sources.host("localhost:5000") == "localhost:5000"
}

test_parse_splits_host_and_whole_components if {
	sources.parse("ghcr.io/acme") == {"host": "ghcr.io", "prefix": ["acme"]}
	sources.parse(" GHCR.IO/Acme/Team/ ") == {"host": "ghcr.io", "prefix": ["acme", "team"]}
	sources.parse("localhost:5000") == {"host": "localhost:5000", "prefix": []}
	sources.parse("index.docker.io/library") == {"host": "docker.io", "prefix": ["library"]}
}

test_parse_of_an_empty_source_is_undefined if {
	not sources.parse("")
	not sources.parse("/")
	not sources.parse("  ")
}

test_host_source_matches_every_path if {
	sources.matches("registry.example.com", fixtures.reference("registry.example.com/x:1"))
	sources.matches("registry.example.com", fixtures.reference("registry.example.com/a/b/c:1"))
	sources.matches("registry.example.com/", fixtures.reference("REGISTRY.EXAMPLE.COM/x:1"))
	sources.matches("REGISTRY.EXAMPLE.COM", fixtures.reference("registry.example.com/x:1"))
}

test_prefix_source_matches_whole_components_only if {
	sources.matches("ghcr.io/acme", fixtures.reference("ghcr.io/acme/app:1"))
	sources.matches("ghcr.io/acme", fixtures.reference("ghcr.io/acme/team/app:1"))
	sources.matches("ghcr.io/acme/", fixtures.reference("ghcr.io/acme/app:1"))
	sources.matches("ghcr.io/acme/app", fixtures.reference("ghcr.io/acme/app:1"))
	not sources.matches("ghcr.io/acme", fixtures.reference("ghcr.io/acmeevil/app:1"))
	not sources.matches("ghcr.io/acme", fixtures.reference("ghcr.io/acme-corp/app:1"))
	not sources.matches("ghcr.io/acme/", fixtures.reference("ghcr.io/acmeevil/app:1"))
	not sources.matches("ghcr.io/acme/team", fixtures.reference("ghcr.io/acme/app:1"))
}

test_host_must_be_equal_not_a_prefix if {
	not sources.matches("registry.example.com", fixtures.reference("registry.example.com.evil.io/x:1"))
	not sources.matches("registry.example.com", fixtures.reference("registry.example.comx/x:1"))
	not sources.matches("registry.example.com", fixtures.reference("evil.io/registry.example.com/x:1"))
	not sources.matches("registry.example.com", fixtures.reference("registry.example.com:5000/x:1"))
}

test_ports_are_part_of_the_host if {
	sources.matches("localhost:5000", fixtures.reference("localhost:5000/app:1"))
	not sources.matches("localhost:5000", fixtures.reference("localhost:5001/app:1"))
	not sources.matches("localhost:5000", fixtures.reference("localhost/app:1"))
	not sources.matches("localhost", fixtures.reference("localhost:5000/app:1"))
}

test_docker_hub_sources if {
	sources.matches("docker.io/library", fixtures.reference("nginx:1.25"))
	sources.matches("index.docker.io/library", fixtures.reference("nginx:1.25"))
	sources.matches("registry-1.docker.io", fixtures.reference("acme/app:1"))
	sources.matches("docker.io", fixtures.reference("registry-1.docker.io/acme/app:1"))
	not sources.matches("docker.io/library", fixtures.reference("acme/app:1"))
	not sources.matches("docker.io", fixtures.reference("docker.io.evil.io/library/nginx:1"))
}

test_empty_sources_match_nothing if {
	not sources.matches("", fixtures.reference("nginx:1.25"))
	not sources.matches("/", fixtures.reference("nginx:1.25"))
	not sources.matches_any([], fixtures.reference("nginx:1.25"))
}

test_matches_any if {
	sources.matches_any(["registry.example.com", "ghcr.io/acme"], fixtures.reference("ghcr.io/acme/app:1"))
	not sources.matches_any(["registry.example.com", "ghcr.io/acme"], fixtures.reference("ghcr.io/other/app:1"))
}
