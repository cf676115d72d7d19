package graph

import (
	"fmt"
	"strings"
	"sync"

	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/formatter"
)

// PublicSDL is Parley's schema as clients see it, printed as SDL: the
// schema of graph/*.graphqls without gqlgen's code-generation directives
// (@goField, and any other directive whose name starts with "go"), neither
// their definitions nor their uses. Types and directives are in
// alphabetical order; built-in ones are left out. It is the content of the
// repository's schema.graphql (`go run ./cmd/parley schema > schema.graphql`).
// It is computed once and safe for concurrent use.
var PublicSDL = sync.OnceValue(func() string {
	var b strings.Builder
	formatter.NewFormatter(&b, formatter.WithIndent("  ")).FormatSchema(withoutCodegenDirectives(NewExecutableSchema(Config{}).Schema()))
	// A blank line after each definition, for the people who read it.
	var out strings.Builder
	out.WriteString("# Parley's GraphQL schema as clients see it, printed from graph/*.graphqls\n" +
		"# by `go run ./cmd/parley schema > schema.graphql`. Do not edit: CI fails\n" +
		"# when it is stale.\n\n")
	for line := range strings.Lines(b.String()) {
		out.WriteString(line)
		if line == "}\n" || strings.HasPrefix(line, "scalar ") || strings.HasPrefix(line, "union ") || strings.HasPrefix(line, "directive ") {
			out.WriteString("\n")
		}
	}
	return strings.TrimSuffix(out.String(), "\n")
})

// PublicSchema is PublicSDL loaded as a schema: set it as Config.Schema so
// that introspection shows what clients should see. It is loaded once; the
// result is shared and must not be modified.
var PublicSchema = sync.OnceValue(func() *ast.Schema {
	s, err := gqlparser.LoadSchema(&ast.Source{Name: "schema.graphql", Input: PublicSDL()})
	if err != nil {
		// The SDL is printed from a schema that gqlgen already loaded.
		panic(fmt.Sprintf("load the public schema: %v", err))
	}
	return s
})

// isCodegenDirective reports whether a directive is gqlgen's, for code
// generation only: gqlgen's are all named go… (goField, goModel, goTag,
// goExtraField, goEnum).
func isCodegenDirective(name string) bool { return strings.HasPrefix(name, "go") }

// withoutCodegenDirectives returns a copy of s, deep enough to print,
// without gqlgen's directives.
func withoutCodegenDirectives(s *ast.Schema) *ast.Schema {
	out := *s
	out.Directives = map[string]*ast.DirectiveDefinition{}
	for name, d := range s.Directives {
		if !isCodegenDirective(name) {
			out.Directives[name] = d
		}
	}
	out.Types = make(map[string]*ast.Definition, len(s.Types))
	for name, def := range s.Types {
		d := *def
		d.Directives = keepDirectives(def.Directives)
		d.Fields = make(ast.FieldList, len(def.Fields))
		for i, f := range def.Fields {
			fc := *f
			fc.Directives = keepDirectives(f.Directives)
			fc.Arguments = make(ast.ArgumentDefinitionList, len(f.Arguments))
			for j, a := range f.Arguments {
				ac := *a
				ac.Directives = keepDirectives(a.Directives)
				fc.Arguments[j] = &ac
			}
			d.Fields[i] = &fc
		}
		d.EnumValues = make(ast.EnumValueList, len(def.EnumValues))
		for i, v := range def.EnumValues {
			vc := *v
			vc.Directives = keepDirectives(v.Directives)
			d.EnumValues[i] = &vc
		}
		out.Types[name] = &d
	}
	return &out
}

// keepDirectives returns list without gqlgen's directives.
func keepDirectives(list ast.DirectiveList) ast.DirectiveList {
	var out ast.DirectiveList
	for _, d := range list {
		if !isCodegenDirective(d.Name) {
			out = append(out, d)
		}
	}
	return out
}
