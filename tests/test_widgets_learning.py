"""The training monitor: each epoch's record redraws the curves in its Output, no kernel needed."""

from cbir_lab.learning import EpochRecord, TrainingRun, TrainingSettings
from cbir_lab.viz.learning import plot_negative_distances, plot_training_curves
from cbir_lab.widgets.learning import TrainingMonitor


def _record(epoch: int) -> EpochRecord:
    return EpochRecord(epoch, loss=0.2 / epoch, p=3.0 - 0.1 * epoch, validation=0.6 + 0.05 * epoch, seconds=1.0)


def test_each_epoch_redraws_the_figure_with_a_caption_naming_the_epoch():
    monitor = TrainingMonitor()
    monitor.start("hard negatives", before=0.6, epochs=8)
    assert "epoch 0 of 8" in monitor.progress.value and "width: 0%" in monitor.progress.value
    monitor.update(_record(1))
    monitor.update(_record(2))
    outputs = monitor.out.outputs
    assert outputs[0]["output_type"] == "display_data" and "image/png" in outputs[0]["data"]
    assert "hard negatives: epoch 2, loss 0.1000, p = 2.800, validation mAP 0.700" in str(outputs)
    assert monitor.errors.outputs == ()
    assert "hard negatives: epoch 2 of 8" in monitor.progress.value and "width: 25%" in monitor.progress.value


def test_the_curves_have_one_line_per_run_starting_from_the_score_before_training():
    runs = {"hard": TrainingRun(TrainingSettings(), 0.6, (_record(1), _record(2))),
            "random": TrainingRun(TrainingSettings(), 0.6, (_record(1),))}
    loss_ax, score_ax, p_ax = plot_training_curves(runs, p_sweep={2.0: 0.5, 3.0: 0.6}).axes[:3]
    assert [len(line.get_xdata()) for line in loss_ax.lines] == [2, 1]
    assert list(score_ax.lines[0].get_xdata()) == [0, 1, 2] and list(score_ax.lines[0].get_ydata())[0] == 0.6
    assert list(p_ax.lines[0].get_ydata()) == [3.0, 2.9, 2.8]


def test_the_margin_picture_counts_negatives_inside_the_margin():
    fig = plot_negative_distances({"hard": [0.2, 0.5, 0.9, 1.0], "random": [1.1, 1.3, 0.6, 1.4]}, margin=0.7)
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert "hard: 50% inside the margin" in labels and "random: 25% inside the margin" in labels
