package db

// ParseURL exposes parseURL to the tests of package db_test.
var ParseURL = parseURL
