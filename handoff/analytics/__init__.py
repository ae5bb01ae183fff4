"""Service analytics for supervisors: how much the bot solves by itself, how well it understands,
why chats reach operators, and the operators' service levels, per day, channel and skill group.
Computed from the stored messages, conversation events and ratings (no counters of its own).
The console's analytics page (handoff/console/analytics_page.py) shows these figures with the same
definitions in Russian; the supervisor's "today" figures (handoff/console/stats.py) are
`operator_figures` for today, so both pages always agree.

Definitions. Days are calendar days in `handoff.timezone`; a period is whole days, both ends
included.
- A message **the bot answered**: a subscriber message stored with a bot reply in the same turn.
  The pipeline (dialogs/pipeline.py) inserts a subscriber message and the replies of its turn in
  one statement with one `created_at`, and only the bot (or the rating step) replies there; so
  messages to a queued chat or an operator (no bot reply) and rating answers (written after the
  chat's `closed_at`) are not the bot's. Button presses and media count too. (One known
  exception: when a linked subscriber's queued chat follows them to the channel they now write
  in, the «продолжим здесь» notice is a reply of that turn, so that one message counts.)
- **Contact** (обращение): a conversation on a day its subscriber wrote to the bot (at least one
  message the bot answered that day), per channel the messages were written in. A bot
  conversation stays open until an operator closes it, so one conversation can span weeks: the
  day is the unit, not the conversation.
- **Handed off**: a contact whose conversation got an "escalated" event that same day (the bot,
  the subscriber or a transfer put it in an operator queue). **Contained** = the other contacts.
  **Containment** = contained / contacts.
- **Fallback rate**: of the texts the bot answered that went through the NLU (`nlu.intent` set;
  commands like /start and button presses excluded), the share marked `nlu.handled_as = "miss"`
  (the bot said it did not understand, offered guesses, or gave up).
- **Top intents**: those same texts that were requests: not a miss, not an answer to a form's
  question (`handled_as = "form:<slot>"`), not "cancel"; counted by NLU intent.
- **Knowledge-base articles**: per article, the texts it answered (`nlu.handled_as =
  "kb:<article>"`; not counted as misses nor as top intents) and the «👍 Помогло» / «👎 Не
  помогло» presses (payloads `kb:yes:<article>` / `kb:no:<article>`) of the period; those with
  more «не помогло» than «помогло» first.
- **Top fallback texts**: the texts of misses, lowercased with whitespace collapsed, by count: the
  raw material for new training examples.
- **Resolved by the bot, per topic**: a contact's topic is the intent of its first request (a
  text the NLU understood as a request, or a topic button); it is **resolved** when it was not
  handed off that day and the same person (any channel) did not write to the bot again within
  24 hours after the contact's last message (**repeat contact**). Per topic: contacts, handed
  off, repeated, resolved and resolved %. A contact of the last 24 hours may still become a
  repeat. (handoff/analytics/resolution.py)
- **Handoff reasons**: every "escalated" event of the period (transfers between groups included)
  by its `reason` and the group it was sent to.
- Operator figures (the same as the supervisor's "today"):
  - a **queue entry**: one request for an operator, from the bot's handoff (its "escalated"
    event from the bot; a transfer to another group continues the entry, a new request after
    "return to bot" is a new entry) to the first operator message after it (**answered**, on
    the day of that message), to leaving the handoff without one (**abandoned**: closed,
    returned to the bot, or a new request began; on the day it left), or neither yet
    (**waiting**: counted now, on the period's first day if it began earlier);
  - **timely first response**: the entries answered within `first_response_target`, of the
    entries answered that day plus the unanswered ones that waited longer than the target
    (abandoned that day after the target, or waiting longer than it so far): unanswered
    subscribers lower it; short abandons and short waits so far are left out. **Average first
    response** is the mean wait of the answered entries; **average wait (all)** the mean over
    answered (to the answer), abandoned (to leaving) and waiting (so far) entries;
  - **response inside the session**: after a chat's first operator reply, the time from a
    subscriber message (the earliest unanswered one) to the next operator reply, on the day of
    the reply;
  - **missed**: chats with a "missed" event that day (the assigned operator did not answer in
    time) / chats assigned to an operator that day (auto-assigned, taken, transferred to a
    person), each chat counted once a day;
  - **CSAT**: of the chats closed that day and rated, the share of 4-5 scores, and the average;
    **NPS**: of the NPS answers of chats closed that day, % promoters (9-10) minus % detractors
    (0-6).
- **Group**: operator figures and handed-off contacts belong to a skill group (operator figures:
  the chat's current group; handed-off contacts and handoff reasons: the group the chat was
  sent to). What the bot did by itself (contained contacts, fallback rate, intents, fallback
  texts) belongs to no group (`None`, filter value `NO_GROUP`).
Totals are sums of the rows' counts, so a chat assigned on two days counts on both.

Cost: the messages of the period are read once (one statement over a materialized CTE; the NLU
JSON is the expensive part), everything else is aggregated in SQL or reads handed-off chats
only. bench/analytics.py measures it.
"""

from handoff.analytics.figures import NO_GROUP, Count, Figures, Period, Reason, Report, Row
from handoff.analytics.operators import operator_figures
from handoff.analytics.report import service_report
from handoff.analytics.resolution import Resolution

__all__ = [
    "NO_GROUP",
    "Count",
    "Figures",
    "Period",
    "Reason",
    "Report",
    "Resolution",
    "Row",
    "operator_figures",
    "service_report",
]
