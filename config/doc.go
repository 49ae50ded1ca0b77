// Package config reads fanout's one YAML file: kafka, redis, schemas, events and
// sinks. Reading is strict: an unknown key, a value of the wrong type, a bad value
// or a missing field is a Problem that names its path and line
// ("sinks[1].url: ... (line 12)"), and Load reports every problem at once.
// ${VAR} and ${VAR:-default} in values expand from the environment.
//
// It only parses and validates; it must not know how sinks deliver or how Kafka is
// consumed. Package app turns a Config into the other packages' Config structs.
package config
