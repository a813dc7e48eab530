"""What reconciler says to the people around a CI job: the living PR comment
(:mod:`.comment`), one issue per drifted or blocked manifest (:mod:`.issues`) and drift
notifications to a Slack- or Teams-compatible webhook (:mod:`.notify`), through the
hosts' REST APIs (:mod:`.hosts`, GitHub and GitLab) with the standard library only.

It reads renderings and the plan model, never the engine's workings, and never
anything that could hold unmasked PHI: what it posts is masked like every CI output.
"""
