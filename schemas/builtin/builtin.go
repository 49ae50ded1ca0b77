// Package builtin holds the subjects of the schemas fanout ships, without
// the Avro machinery of package schemas, so config can default to them.
package builtin

// Subjects maps each shipped subject to the schema id it has in a local
// registry and in the demo. Treat it as read-only; schemas.BuiltinSubjects
// is the same map.
var Subjects = map[string]int{
	"user.registered": 1,
	"order.placed":    2,
}
