"""What the passes share, none of it a pass itself: block statistics and
blocking (`blocks`), co-clustering of shuffled block-sparse matrices
(`coclustering`), Model edits (`edit`), node permutations (`permute`),
parameter rewrites recorded for the layout cache (`rewrites`) and the sum
index arrays of the layout (`sum_index`)."""
