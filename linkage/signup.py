"""Signup verification: score one new account against a finished run.

INTERFACE (implementation being completed by the lead engineer):

    scorer = SignupScorer.from_run(run_dir)          # loads run + signup_index once
    result = scorer.score_one({"account_id": ..., "created_at": ..., "email": ...,
                               "signup_ip": ..., "device_fingerprint": ...,
                               "payment_fingerprint": ..., "user_agent": ...})
    result.score, result.level, result.cluster_id, result.evidence, result.velocity
    frame = scorer.score_frame(signups_df)  # account_id, score, level, cluster_id, evidence (JSON text)

``score_one`` also records the signup in an in-memory sliding window so that
velocity (many new accounts on one subnet/card/device in minutes) counts;
``scorer.observe(records)`` warms that window (e.g. from the store on start-up).
"""
