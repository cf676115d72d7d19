package chat

import (
	"context"
	"encoding/json"
	"time"

	"github.com/parleychat/parley/apperr"
	"github.com/parleychat/parley/delivery"
	"github.com/parleychat/parley/models"
)

// preSendType is the type of the pre-send hook's request body.
const preSendType = "message.sending"

// preSendMessage is the message in a pre-send request: a Message's shape,
// before it has an index.
type preSendMessage struct {
	ID         string        `json:"id"`
	Channel    hookChannelID `json:"channel"`
	Body       string        `json:"body"`
	Attributes models.JSON   `json:"attributes"`
	CreatedAt  time.Time     `json:"createdAt"`
}

// hookChannelID is a channel named by its id only.
type hookChannelID struct {
	ID string `json:"id"`
}

// preSendBody is the pre-send hook's request body.
type preSendBody struct {
	Type      string    `json:"type"`
	Timestamp time.Time `json:"timestamp"`
	Data      struct {
		Message preSendMessage `json:"message"`
		Sender  *hookUser      `json:"sender"`
	} `json:"data"`
}

// preSend asks the pre-send hook about msg, from v, before it joins a send
// batch (never inside a transaction), and applies its verdict to msg:
// REJECTED when the hook rejects it, or fails and fails closed, or modifies
// it into a message sendMessage would refuse. Without a hook it does
// nothing.
func (s *Service) preSend(ctx context.Context, v viewer, msg *models.Message) error {
	if s.presend == nil {
		return nil
	}
	var sender models.User
	if err := s.store.DB(ctx).Take(&sender, "id = ?", v.UserID).Error; err != nil {
		return internal("load sender for the pre-send hook", err)
	}
	var req preSendBody
	req.Type, req.Timestamp = preSendType, now()
	req.Data.Message = preSendMessage{ID: msg.ID, Channel: hookChannelID{ID: msg.ChannelID}, Body: msg.Body, Attributes: msg.Attributes, CreatedAt: msg.CreatedAt}
	req.Data.Sender = toHookUser(&sender)
	body, err := json.Marshal(&req)
	if err != nil {
		return internal("encode pre-send request", err)
	}
	verdict, err := s.presend.Check(ctx, msg.ID, body)
	if err != nil {
		return apperr.New(apperr.Rejected, "the message could not be checked by the application's pre-send hook; it was not sent")
	}
	switch verdict.Action {
	case delivery.Reject:
		reason := verdict.Reason
		if reason == "" {
			reason = "the message was rejected"
		}
		return apperr.New(apperr.Rejected, "%s", reason)
	case delivery.Modify:
		if verdict.Body != nil {
			if err := s.checkBody(*verdict.Body); err != nil {
				return apperr.New(apperr.Rejected, "the pre-send hook changed the message into one that cannot be sent: %s", err.Error())
			}
			msg.Body = *verdict.Body
		}
		if verdict.SetAttributes {
			attrs := models.JSON(verdict.Attributes)
			if err := s.checkAttributes(attrs); err != nil {
				return apperr.New(apperr.Rejected, "the pre-send hook changed the message into one that cannot be sent: %s", err.Error())
			}
			msg.Attributes = attrs
		}
	}
	return nil
}
