// dockerfile-lint: BuildKit's Dockerfile linter — the rules `docker build --check` applies
// (stage and keyword casing, JSON-form CMD/ENTRYPOINT, secrets in ARG/ENV, undefined
// variables, ...) — without a Docker engine. Usage: dockerfile-lint FILE...; exit 1 on any
// warning, 2 when a file cannot be read or parsed.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/frontend/dockerfile/dockerfile2llb"
	digest "github.com/opencontainers/go-digest"
	"github.com/sirupsen/logrus"
)

// offline answers every base image with an empty configuration: linting needs no registry
// (this machine reaches none), and the rules that read a base image's config see none.
type offline struct{}

func (offline) ResolveImageConfig(_ context.Context, ref string, _ sourceresolver.Opt) (string, digest.Digest, []byte, error) {
	return ref, "", []byte("{}"), nil
}

func main() {
	logrus.SetLevel(logrus.ErrorLevel)
	status := 0
	for _, file := range os.Args[1:] {
		warnings, err := lint(file)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", file, err)
			status = 2
			continue
		}
		for _, w := range warnings {
			fmt.Println(w)
		}
		if len(warnings) > 0 && status == 0 {
			status = 1
		}
	}
	os.Exit(status)
}

func lint(file string) ([]string, error) {
	dt, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	// The results refer to their source through an LLB definition, as the frontend's do.
	src := llb.Local("dockerfile")
	def, err := src.Marshal(ctx)
	if err != nil {
		return nil, err
	}
	smap := llb.NewSourceMap(&src, file, "Dockerfile", dt)
	smap.Definition = def
	res, err := dockerfile2llb.DockerfileLint(ctx, dt, dockerfile2llb.ConvertOpt{
		SourceMap:    smap,
		MetaResolver: offline{},
	})
	if err != nil {
		return nil, err
	}
	if res.Error != nil {
		return nil, fmt.Errorf("%s", res.Error.Message)
	}
	var out []string
	for _, w := range res.Warnings {
		line := 0
		if len(w.Location.Ranges) > 0 {
			line = int(w.Location.Ranges[0].Start.Line)
		}
		out = append(out, fmt.Sprintf("%s:%d: %s: %s (%s)", file, line, w.RuleName, w.Detail, w.URL))
	}
	return out, nil
}
