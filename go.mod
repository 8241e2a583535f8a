module github.com/ptsim/ptsim

go 1.26
