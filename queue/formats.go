package queue

// Formats is what this build of the store reads: the state file's layout
// versions, the replicated log entry's encodings, the backup file's format
// and the highest site version it understands. `hotlinectl version` and
// `hotlined --version` print it, so that an operator can hold a build
// against the README's table of releases before upgrading to it or rolling
// back from it.
type Formats struct {
	StateFile   [2]int `json:"state_file"` // the oldest and newest layout versions Open reads
	LogEntry    [2]int `json:"log_entry"`  // the oldest and newest command encodings DecodeCommand reads
	Backup      int    `json:"backup"`     // the one backup format Restore reads
	SiteVersion int    `json:"site_version"`
}

// ReadFormats is what this build reads.
func ReadFormats() Formats {
	return Formats{
		StateFile:   [2]int{minFormatVersion, maxFormatVersion},
		LogEntry:    [2]int{cmdVersion1, cmdVersion},
		Backup:      BackupFormat,
		SiteVersion: MaxSiteVersion,
	}
}
