// Package demo is the worked example that `fanout demo` runs in-process and
// `fanout demo-api` serves for the Compose stack: the three downstream APIs
// (profile, email, analytics; [Behaviours] over a [sinktest.API]), the
// sign-up service that publishes user.registered events ([Producer],
// [ExampleUser]), the config a user would write for it ([Config]), [Start],
// which starts them with an in-process Kafka and builds the sinks as run does
// (app.BuildSinks), and [Run], which drives the sinks against them until every
// sink has caught up and returns the counts ([Report], [Result], [SinkResult]).
//
// demo must not know how results are printed: [Run] reports progress through
// a func and returns values; the command prints them.
package demo
