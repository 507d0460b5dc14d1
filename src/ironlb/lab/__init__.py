"""Labs in network namespaces: the demo, the benchmarks and the netns tests build their networks here."""
