# The glob language of `signatures` sources (README "Globs"): a source without a glob
# covers itself and everything below; `*` and `?` stay within one path component, `**`
# crosses components, and a glob matches whole repositories.
package imagegate.lib.signatures_test

import data.imagegate.lib.signatures

# [source, registry, repository, covered]
glob_cases := [
	["registry.example.com/prod", "registry.example.com", "prod", true],
	["registry.example.com/prod", "registry.example.com", "prod/team/app", true],
	["registry.example.com/prod", "registry.example.com", "production/app", false],
	# `*` stays within one component
	["registry.example.com/prod/*", "registry.example.com", "prod/app", true],
	["registry.example.com/prod/*", "registry.example.com", "prod/team/app", false],
	["registry.example.com/prod/*", "registry.example.com", "prod", false],
	["registry.example.com/*/tools", "registry.example.com", "team/tools", true],
	["registry.example.com/*/tools", "registry.example.com", "a/b/tools", false],
	["registry.example.com/prod/app-*", "registry.example.com", "prod/app-api", true],
	# `**` crosses components
	["registry.example.com/prod/**", "registry.example.com", "prod/app", true],
	["registry.example.com/prod/**", "registry.example.com", "prod/team/app", true],
	["registry.example.com/**/tools", "registry.example.com", "a/b/tools", true],
	["registry.example.com/**/tools", "registry.example.com", "a/b/tools/x", false],
	# `?` is one character of a component
	["registry.example.com/team-?/app", "registry.example.com", "team-a/app", true],
	["registry.example.com/team-?/app", "registry.example.com", "team-ab/app", false],
	["registry.example.com/prod?app", "registry.example.com", "prod/app", false],
	# the registry folds as sources fold it, and is never a prefix of a look-alike
	["Registry.Example.com/prod/*", "registry.example.com", "prod/app", true],
	["index.docker.io/library/*", "docker.io", "library/nginx", true],
	["registry.example.com/prod/*", "registry.example.com.evil.io", "prod/app", false],
]

test_the_glob_language if {
	every case in glob_cases {
		entries := [{"images": [case[0]], "keys": ["/keys/release.pub"]}]
		found := [r | r := signatures.required_any([{"domain": case[1], "path": case[2]}])]
			with data.imagegate.config.signatures as entries
		count(found) == 1 == case[3]
	}
}
