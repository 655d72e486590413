"""When each asset re-materializes by itself (declarative automation), reacting to data versions.

Every asset carries one of these conditions; the automation sensor ``survey_automation``
(running by default) evaluates them. They react to *data versions*, not to re-materializations: a
survey's data version is a hash of its files, a training set's of its arrays, a model's of its
weights, the evaluation table's of the table, the champion's its registered version; the other
assets' are Dagster's hash of their code version and their inputs' data versions. So:
- the survey chain (tiles, labels, agreement) follows a survey whose files changed, or an
  asset whose code version changed (``on_new_data``); re-ingesting identical files requests
  nothing;
- the training sets wait for the retraining window (``LANDSLIDE_RETRAIN_CRON``, default 02:00
  nightly) and then run once if any label changed since they last ran: a burst of survey
  changes causes one retraining (``in_retraining_window``);
- a model partition that has been trained is retrained when its training set's data changed;
  partitions nobody trained stay untrained (``retrain_trained``);
- ensembles, the evaluation table and the reports follow once every model run has finished,
  the champion once the table's blocking checks passed (``after_upstream_settles``), and every
  survey is re-mapped when a new champion is registered;
- the experiments (which train their own models) wait for their own, weekly window
  (``LANDSLIDE_EXPERIMENTS_CRON``).
"""

from dagster import AssetSelection, AutomationCondition


def _data_changed(same_run: bool, ignore: tuple[str, ...] = ()) -> AutomationCondition:
    """An upstream's data version changed (or, with ``same_run``, it is being requested in this
    tick, so the two run together), or this asset's code version changed. ``ignore``: upstream
    assets whose changes do not count."""
    upstream = AutomationCondition.data_version_changed()
    if same_run:
        upstream = upstream | AutomationCondition.will_be_requested()
    deps = AutomationCondition.any_deps_match(upstream)
    if ignore:
        deps = deps.ignore(AssetSelection.assets(*ignore))
    return deps | AutomationCondition.code_version_changed()


def on_new_data(ignore: tuple[str, ...] = (), same_run: bool = True) -> AutomationCondition:
    """``eager``, but on new upstream *data*: an upstream re-materialized with the same data
    version (an identical re-ingest) requests nothing; a code version change does. Changes of
    the ``ignore`` upstreams do not count (they are read only in some configurations). With
    ``same_run``, an upstream requested in the same tick requests this asset too (one run);
    without, it waits for the upstream's new data version (an expensive asset whose upstream
    often re-runs without changing).

    A missing asset (a new survey) is requested with its upstream either way."""
    condition = AutomationCondition.eager().replace("any_deps_updated", _data_changed(same_run, ignore))
    return condition.with_label("on_new_data")  # type: ignore[union-attr]  # replace keeps the And


def in_retraining_window(cron: str) -> AutomationCondition:
    """At a tick of ``cron``, when an upstream's data (or this asset's code) changed since this
    asset last ran: changes in between are batched into one run."""
    return (AutomationCondition.cron_tick_passed(cron) & _data_changed(same_run=False).since_last_handled()
            & ~AutomationCondition.any_deps_in_progress() & ~AutomationCondition.in_progress()).with_label(
        f"in_retraining_window({cron})")


def retrain_trained() -> AutomationCondition:
    """A partition that has been materialized, when its upstream's data (or its code) changed:
    the model partitions someone trained are retrained on new training data, the others stay
    untrained."""
    return (_data_changed(same_run=False).since_last_handled() & ~AutomationCondition.missing()
            & ~AutomationCondition.any_deps_in_progress() & ~AutomationCondition.in_progress()).with_label(
        "retrain_trained")


def after_upstream_settles(blocking_checks: bool = False, ignore: tuple[str, ...] = ()) -> AutomationCondition:
    """Once an upstream updated and none of its partitions is still queued or running (every
    model of a retraining has finished); with ``blocking_checks``, once their blocking checks
    passed. Updates of the ``ignore`` upstreams do not count (the evaluation reads the training
    sets, but follows the models retrained on them)."""
    updated = AutomationCondition.any_deps_updated()
    if ignore:
        updated = updated.ignore(AssetSelection.assets(*ignore))
    condition = (updated.since_last_handled()
                 & ~AutomationCondition.any_deps_in_progress() & ~AutomationCondition.in_progress())
    if blocking_checks:
        condition = condition & AutomationCondition.all_deps_blocking_checks_passed()
    return condition.with_label("after_upstream_settles")


def on_code_change() -> AutomationCondition:
    """A new code version re-runs it (a survey's validation: new data arrives through the sensor)."""
    changed: AutomationCondition = AutomationCondition.code_version_changed()
    return (changed.since_last_handled() & ~AutomationCondition.in_progress()).with_label("on_code_change")
