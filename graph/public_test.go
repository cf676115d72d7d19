package graph_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/formatter"

	"github.com/parleychat/parley/graph"
)

// TestSchemaFile: the repository's schema.graphql is the public schema of
// graph/*.graphqls.
func TestSchemaFile(t *testing.T) {
	committed, err := os.ReadFile(filepath.Join("..", "schema.graphql"))
	if err != nil {
		t.Fatal(err)
	}
	if string(committed) != graph.PublicSDL() {
		t.Fatal("schema.graphql is stale: run go run ./cmd/parley schema > schema.graphql")
	}
}

// TestPublicSchema: no gqlgen directive is defined or used, and the public
// schema prints back to the same SDL (nothing lost in the round trip).
func TestPublicSchema(t *testing.T) {
	s := graph.PublicSchema()
	for name := range s.Directives {
		if strings.HasPrefix(name, "go") {
			t.Errorf("directive @%s is defined", name)
		}
	}
	check := func(where string, list ast.DirectiveList) {
		for _, d := range list {
			if strings.HasPrefix(d.Name, "go") {
				t.Errorf("%s uses @%s", where, d.Name)
			}
		}
	}
	for name, def := range s.Types {
		check(name, def.Directives)
		for _, f := range def.Fields {
			check(name+"."+f.Name, f.Directives)
			for _, a := range f.Arguments {
				check(name+"."+f.Name+"("+a.Name+")", a.Directives)
			}
		}
	}
	if s.Types["UpdateChannelInput"] == nil || s.Types["UpdateChannelInput"].Fields.ForName("friendlyName") == nil {
		t.Fatal("a field declared with @goField is missing")
	}
	var b strings.Builder
	formatter.NewFormatter(&b, formatter.WithIndent("  ")).FormatSchema(s)
	normalize := func(sdl string) string {
		var lines []string
		for line := range strings.Lines(sdl) {
			if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
				lines = append(lines, line)
			}
		}
		return strings.Join(lines, "\n")
	}
	if normalize(b.String()) != normalize(graph.PublicSDL()) {
		t.Error("PublicSchema does not print back to PublicSDL")
	}
}
