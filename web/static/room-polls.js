// Polls: the three newest (open first), voting once, and the results.
import { $, ack, showError, state } from "./room-context.js";
import { h } from "./ui.js";
import { errorText, plural } from "./i18n.js";

export function upsertPoll(poll) {
  const known = state.polls.get(poll.id);
  if (known && known.voted != null && poll.voted == null) poll.voted = known.voted;
  state.polls.set(poll.id, poll);
  renderPolls();
}

function renderPolls() {
  const polls = [...state.polls.values()].sort((a, b) => Number(b.open) - Number(a.open) || b.id - a.id).slice(0, 3);
  $("poll-panel").hidden = polls.length === 0;
  $("polls").replaceChildren(...polls.map((poll) => {
    const canVote = poll.open && poll.voted == null;
    const options = poll.options.map((option, i) => {
      const count = poll.counts[i] || 0;
      const pct = poll.total ? Math.round((count / poll.total) * 100) : 0;
      if (canVote) {
        return h("li", {}, h("button", { type: "button", class: "option", dataset: { option: i },
          onclick: () => votePoll(poll.id, i) }, option));
      }
      return h("li", { class: poll.voted === i ? "result mine" : "result" },
        h("span", { class: "label" }, option), " ", h("span", { class: "count" }, `${count} (${pct}%)`),
        h("span", { class: "bar", style: `width:${pct}%` }));
    });
    return h("div", { class: "poll", dataset: { id: poll.id, open: String(poll.open) } },
      h("p", { class: "question-text" }, poll.question),
      h("ol", { class: "options" }, ...options),
      h("p", { class: "hint" }, poll.open ? plural("room.votes_open", poll.total) : plural("room.votes_final", poll.total)));
  }));
}

async function votePoll(id, option) {
  const res = await ack("poll:vote", { id, option });
  const poll = state.polls.get(id);
  if (res.ok || (res.error && res.error.code === "already_voted")) {
    if (poll) {
      if (res.ok) {
        poll.voted = option;
        poll.counts[option] = (poll.counts[option] || 0) + 1;
        poll.total += 1;
      } else {
        poll.voted = poll.voted ?? option;
      }
      renderPolls();
    }
  } else {
    showError($("ask-error"), errorText(res.error.code, res.error.message));
  }
}
