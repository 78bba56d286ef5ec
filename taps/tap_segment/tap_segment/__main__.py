from tap_segment.tap import TapSegment

TapSegment.cli()
