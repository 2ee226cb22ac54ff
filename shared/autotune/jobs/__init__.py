"""The jobs stage: exactly one tuning job per dataset version, at most `max_concurrent_jobs` at a time.

The decisions are pure functions of the ledger documents they read (`decide_*`, `promote`,
`record_job_snapshot`, ...; autotune.jobs.decisions): each returns the documents to write and
what happened. The ledger adapter runs each one inside a transaction that read those documents,
so two deliveries of one request, or two overlapping status ticks, can never both win the same
move. The orchestration (`submit_message`/`submit_request`, `status_tick`, `cancel`) sees the
ledger, the tuning service and the event bus only through the small protocols of
autotune.jobs.ports; the Google clients live in adapters/.

Exactly once, step by step:
1. claim: the record (document id = idempotency key) is created ACCEPTED and moved, in the same
   transaction as the project's one `slots` document, to SUBMITTING (a slot and a claim that
   expires) or QUEUED (no free slot, or others already waiting: FIFO). An existing record
   makes the delivery a no-op, unless it is SUBMITTING with an expired claim (its submitter
   died): then this delivery takes it over.
2. adopt or create: the Vertex job carries the key in a label; before creating, the jobs with
   that label are listed and an existing one is adopted (a crash between create and step 3).
   None listed: the holder confirms in a transaction that the claim is still its own (same
   attempt number) and renews it, then creates; a holder overtaken while it looked makes no
   job, and an answer a holder gets (429, refusal, none) changes the record only while it
   still holds the claim. Every claim's expiry counts from the clock read inside its transaction.
3. record: SUBMITTING -> SUBMITTED with the job name, in a transaction.
Every move writes its event into the record's outbox in the same transaction. The caller that
made the move publishes the events its own move added (never those of an earlier move still in
the outbox: their own mover is publishing them) and removes them from the outbox. What a crash
left behind is published by a status tick once it is OUTBOX_GRACE_SECONDS old, under a lease
taken in a transaction, so two overlapping ticks do not both publish it. Only a crash between
publishing and removing gives a second copy, with the same ce-id: subscribers drop it.
"""
