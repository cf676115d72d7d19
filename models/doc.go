// Package models holds Parley's persistent rows as GORM structs. Where a
// struct has the shape of a GraphQL type, gqlgen.yml binds the two, so a row
// loaded from the database is what a resolver returns.
//
// The package imports no other Parley package.
package models
