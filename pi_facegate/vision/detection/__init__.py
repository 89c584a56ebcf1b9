"""vision/detection"""
