// Package demo is the worked example that `fanout demo` runs in-process and
// `fanout demo-api` serves for the Compose stack: the three downstream APIs
// (profile, email, analytics; [Behaviours] over a [sinktest.API]), the
// sign-up service that publishes user.registered events ([Producer],
// [ExampleUser]), the config a user would write for it ([Config]), and [Run],
// which drives built sinks against them until every sink has caught up and
// returns the counts ([Report], [Result]).
//
// demo must not know how sinks are assembled or how results are printed: the
// command builds the sinks (app.BuildSinks) and hands [Run] their consumers;
// [Run] reports progress through a func and returns values.
package demo
