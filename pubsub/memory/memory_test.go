package memory_test

import (
	"errors"
	"log/slog"
	"testing"

	"github.com/parleychat/parley/pubsub"
	"github.com/parleychat/parley/pubsub/memory"
	"github.com/parleychat/parley/pubsub/pubsubtest"
)

func TestBroker(t *testing.T) {
	pubsubtest.Run(t, func(t *testing.T) pubsub.Broker {
		b := memory.New(pubsub.Options{Buffer: pubsubtest.MinBuffer, Logger: slog.New(slog.DiscardHandler)})
		t.Cleanup(func() {
			if err := b.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return b
	})
}

func TestDefaultBuffer(t *testing.T) {
	b := memory.New(pubsub.Options{})
	defer func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()
	sub, err := b.Subscribe(t.Context(), "t")
	if err != nil {
		t.Fatal(err)
	}
	for i := range pubsub.DefaultBuffer {
		if err := b.Publish(t.Context(), "t", []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	pubsubtest.ExpectMessage(t, sub, "t", "\x00")
	for i := range 2 {
		if err := b.Publish(t.Context(), "t", []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(pubsubtest.Drain(t, sub)); got != pubsub.DefaultBuffer || !errors.Is(sub.Err(), pubsub.ErrSlowConsumer) {
		t.Fatalf("after DefaultBuffer+1 unread messages: read %d then Err %v; want %d, ErrSlowConsumer", got, sub.Err(), pubsub.DefaultBuffer)
	}
}
