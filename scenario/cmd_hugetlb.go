package scenario

// hugetlbCommands returns the hugetlb command:
//
//	hugetlb alloc N SIZE
//	hugetlb free N SIZE
//
// allocates or frees N hugetlb folios of SIZE as one batch. The hugetlb
// vmemmap issue replaces this file.
func hugetlbCommands() []Command { return nil }
