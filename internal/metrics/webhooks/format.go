package webhooks

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// Body is what a webhook of format receives for ev.
func Body(format string, ev skiff.Event) ([]byte, error) {
	if format == skiff.FormatSlack {
		return json.Marshal(slackMessage(ev))
	}
	return json.Marshal(ev)
}

// Summary is an event in one line of plain text: what a Slack message,
// an email's subject and the logs say of it.
func Summary(ev skiff.Event) string {
	where := ev.App
	if where == "" {
		where = "platform"
	}
	if a := ev.Alert; a != nil {
		state := "FIRING"
		if a.State == skiff.AlertResolved {
			state = "RESOLVED"
		}
		return fmt.Sprintf("[%s] %s: %s", state, where, ev.Message)
	}
	return fmt.Sprintf("%s: %s", where, ev.Message)
}

// slack is the body of a Slack-compatible incoming webhook: the text is
// what notifications show; the blocks lay it out in the channel.
type slack struct {
	Text   string       `json:"text"`
	Blocks []slackBlock `json:"blocks,omitempty"`
}

type slackBlock struct {
	Type     string      `json:"type"`
	Text     *slackText  `json:"text,omitempty"`
	Elements []slackText `json:"elements,omitempty"`
}

type slackText struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

func slackMessage(ev skiff.Event) slack {
	text := slackEscape(Summary(ev))
	icon := ""
	if a := ev.Alert; a != nil {
		icon = ":rotating_light: "
		if a.State == skiff.AlertResolved {
			icon = ":white_check_mark: "
		}
	}
	context := []string{"`" + ev.Type + "`", "<!date^" + fmt.Sprint(ev.Time.Unix()) + "^{date_short_pretty} {time_secs}|" + ev.Time.UTC().Format("2006-01-02 15:04:05 UTC") + ">"}
	if ev.Actor != "" {
		context = append(context, "by "+slackEscape(ev.Actor))
	}
	if ev.Release != 0 {
		context = append(context, skiff.VersionLabel(ev.Release))
	}
	return slack{Text: icon + text, Blocks: []slackBlock{
		{Type: "section", Text: &slackText{Type: "mrkdwn", Text: icon + text}},
		{Type: "context", Elements: []slackText{{Type: "mrkdwn", Text: strings.Join(context, " · ")}}},
	}}
}

// slackEscape escapes the three characters Slack's mrkdwn reserves.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
