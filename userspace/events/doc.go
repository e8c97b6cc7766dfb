// Package events is the agent's event stream: named, timestamped records
// such as dispatcher:dst-down that one subsystem publishes and others
// consume. Every event published on a Bus is logged (one line, the
// event's name as the message and its fields as the keys, in order) and
// handed to every subscription whose filter takes it: the control
// socket's event streams (events.subscribe) and the hook command (Hook).
//
// Publishing never blocks the publisher (probing applies results on one
// goroutine and must not wait for a slow reader): each subscription has a
// bounded queue, and an event that finds it full is dropped for that
// subscription only and counted. The first drop of a run is logged once;
// the subscriber gets a record named LostEvent with the number lost once
// it has caught up (Subscription.Next), and Bus.Stats reports the totals.
//
// The package knows nothing of the dispatcher: an event is a name and an
// ordered list of fields, so later subsystems (keepalive up/down, TCP
// connection events with a connection id, dialogs) publish on the same
// bus. docs/events.md documents the names, the record format, the hook's
// environment and what happens on overload.
package events
